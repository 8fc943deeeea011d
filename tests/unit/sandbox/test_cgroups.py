"""sandbox.cgroups on a stand-in cgroup v2 tree (plain files in a temporary directory).

This build machine has cgroup v1 (hybrid) only, where the real thing is tested by the attack suite
(tests/integration/test_sandbox_attacks.py, test_sandbox_memory_pressure.py); these tests cover what the
v2 path writes where, which no machine here can run for real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox import cgroups
from sandbox.cgroups import CgroupsUnavailable, SlotCgroups


def fake_v2(root: Path, own: str, pids: list[int], controllers: str = "cpu memory pids") -> Path:
    """A cgroup v2 tree with the server's own cgroup at `own` (relative to the root) holding `pids`."""
    directory = root / own if own else root
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cgroup.controllers").write_text(controllers + "\n")
    (directory / "cgroup.subtree_control").write_text("")
    (directory / "cgroup.procs").write_text("".join(f"{pid}\n" for pid in pids))
    if own:
        (directory / "cgroup.type").write_text("domain\n")
    return directory


def test_v2_moves_the_server_into_a_leaf_and_makes_a_cgroup_per_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = fake_v2(tmp_path, "system.slice/reward.service", [os.getpid()])
    monkeypatch.setattr(cgroups, "own_cgroup_dir", lambda controller: ("cgroup2", str(own)))
    made = SlotCgroups.create("990000", slots=2)

    assert made.version == 2
    leaf = own / f"iarl-server-{os.getpid()}"
    assert (leaf / "cgroup.procs").read_text() == str(os.getpid())  # (a real kernel moves it; here: written)
    assert (own / "cgroup.subtree_control").read_text() == "+memory +cpu"
    base = own / "iarl-sandbox-990000"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert (base / "cpu.weight").exists() is False  # (written only where the kernel made the file)
    for slot in (0, 1):
        assert (base / f"slot-{slot}" / "memory.oom.group").read_text() == "1"
    assert made.runner_config(1) == {
        "join": [str(base / "slot-1" / "cgroup.procs")],
        "oom_kills": str(base / "slot-1" / "memory.events"),
        "cpu_usage": str(base / "slot-1" / "cpu.stat"),
        "shared": False,
    }
    made.set_memory_limit(1, memory_mb=256, workdir_mb=64)
    assert (base / "slot-1" / "memory.max").read_text() == str((256 + 64 + cgroups.SESSION_SLACK_MB) << 20)


def test_v2_warns_where_swap_cannot_be_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    own = fake_v2(tmp_path, "", [os.getpid()])
    monkeypatch.setattr(cgroups, "own_cgroup_dir", lambda controller: ("cgroup2", str(own)))
    monkeypatch.setattr(cgroups, "_swap_in_use", lambda: True)
    SlotCgroups.create("1", slots=1)  # (no memory.swap.max: a kernel without swap accounting)
    assert "no swap accounting" in caplog.text

    caplog.clear()
    swap_max = own / "iarl-sandbox-2" / "slot-0" / "memory.swap.max"
    real_mkdir = Path.mkdir

    def mkdir_with_swap_max(self: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        if self == swap_max.parent:
            swap_max.write_text("max")

    monkeypatch.setattr(Path, "mkdir", mkdir_with_swap_max)
    SlotCgroups.create("2", slots=1)
    assert swap_max.read_text() == "0" and "no swap accounting" not in caplog.text


def test_v2_refuses_a_cgroup_shared_with_other_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = fake_v2(tmp_path, "user.slice/session.scope", [os.getpid(), 1])  # pid 1 is not ours
    monkeypatch.setattr(cgroups, "own_cgroup_dir", lambda controller: ("cgroup2", str(own)))
    with pytest.raises(CgroupsUnavailable, match="1 other processes; set SANDBOX_CGROUP_PARENT"):
        SlotCgroups.create("990000", slots=1)


def test_v2_at_the_root_and_under_a_delegated_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2(tmp_path / "root", "", [1, os.getpid()])  # the root may hold processes beside children
    monkeypatch.setattr(cgroups, "own_cgroup_dir", lambda controller: ("cgroup2", str(root)))
    assert SlotCgroups.create("1", slots=1).bases == (root / "iarl-sandbox-1",)

    delegated = fake_v2(tmp_path / "delegated", "user@1000.service/iarl", [])
    assert SlotCgroups.create("2", slots=1, parent=delegated).bases == (delegated / "iarl-sandbox-2",)
    with pytest.raises(CgroupsUnavailable, match="not a cgroup v2 directory"):
        SlotCgroups.create("3", slots=1, parent=tmp_path)


def test_v2_without_the_memory_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = fake_v2(tmp_path, "", [os.getpid()], controllers="cpu pids")
    monkeypatch.setattr(cgroups, "own_cgroup_dir", lambda controller: ("cgroup2", str(own)))
    with pytest.raises(CgroupsUnavailable, match="memory controller"):
        SlotCgroups.create("990000", slots=1)


def test_no_memory_controller_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "own_cgroup_dir", lambda controller: None)
    with pytest.raises(CgroupsUnavailable, match="no memory cgroup controller"):
        SlotCgroups.create("990000", slots=1)


def test_a_left_over_tree_is_removed_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2(tmp_path, "", [os.getpid()])
    monkeypatch.setattr(cgroups, "own_cgroup_dir", lambda controller: ("cgroup2", str(root)))
    stale = root / "iarl-sandbox-7" / "slot-0"
    stale.mkdir(parents=True)
    (stale / "left-by-a-crashed-server").write_text("")
    monkeypatch.setattr(cgroups, "_remove_tree", lambda directory, version: _rmtree(directory))
    SlotCgroups.create("7", slots=1)
    assert (root / "iarl-sandbox-7" / "slot-0").is_dir()
    assert not (stale / "left-by-a-crashed-server").exists()  # a fresh one


def _rmtree(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory)
