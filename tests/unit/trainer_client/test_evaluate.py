"""trainer_client.evaluate: the per-prompt sampling seed."""

from __future__ import annotations

from trainer_client.evaluate import sampling_seed


def test_each_prompt_and_chunk_gets_its_own_seed() -> None:
    seeds = {sampling_seed(0, f"toy-{i}", start) for i in range(50) for start in (0, 32, 64)}
    assert len(seeds) == 150
    assert sampling_seed(0, "toy-0", 0) != sampling_seed(1, "toy-0", 0)  # the config's seed still counts
    assert all(0 <= seed < 2**56 for seed in seeds)


def test_seed_is_stable_across_processes() -> None:
    """Not Python's hash(), which is salted per process: a rerun of `eval` must draw the same samples. The
    pinned value was computed in another process; changing it changes every evaluation's samples."""
    assert sampling_seed(0, "toy-0", 0) == 15583068776391962
    assert sampling_seed(3, "prompt-a", 32) == sampling_seed(3, "prompt-a", 32)
