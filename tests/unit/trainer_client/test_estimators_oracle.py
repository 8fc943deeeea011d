"""Estimators against brute-force oracles on random groups (hypothesis).

The oracles are written independently of the library, in plain Python on lists: the generic leave-one-out
f(y) - f(y_-i) (docs/estimators.md §6.1) with f = max, mean, softmax value or majority vote (expected
tie-break), and direct enumeration of subsets for leave-p-out (paper eq. 5), PKPO and the U-statistics.
Failed samples (NaN) are dropped before the oracle runs and get advantage 0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from itertools import combinations
from typing import TypeVar

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer_client.estimators import compute_advantages, maj_at_k_values, maxg_at_k, pass_at_k

TOL = 1e-9
NAN = float("nan")
T = TypeVar("T")
EXAMPLES = settings(max_examples=100, deadline=None, database=None, derandomize=True)

# --------------------------------------------------------------------------------------------- oracles


def f_max(r: Sequence[float]) -> float:
    return max(r) if r else 0.0


def f_mean(r: Sequence[float]) -> float:
    return sum(r) / len(r) if r else 0.0


def f_softmax(beta: float) -> Callable[[Sequence[float]], float]:
    def f(r: Sequence[float]) -> float:
        if not r:
            return 0.0
        top = max(r)
        w = [math.exp(beta * (x - top)) for x in r]
        return sum(wi * x for wi, x in zip(w, r, strict=True)) / sum(w)

    return f


def f_majority(values: dict[int, float], abstain_value: float) -> Callable[[Sequence[int]], float]:
    """Majority vote over answer classes; -1 abstains, expected uniform tie-break, no vote: abstain_value."""

    def f(classes: Sequence[int]) -> float:
        votes = Counter(a for a in classes if a != -1)
        if not votes:
            return abstain_value
        top = max(votes.values())
        winners = [a for a, c in votes.items() if c == top]
        return sum(values[a] for a in winners) / len(winners)

    return f


def loo(f: Callable[[list[T]], float], items: list[T]) -> list[float]:
    """Generic leave-one-out credit f(y) - f(y_-i) (docs/estimators.md §11)."""
    return [f(items) - f(items[:i] + items[i + 1 :]) for i in range(len(items))]


def centred(a: list[float]) -> list[float]:
    mean = sum(a) / len(a)
    return [x - mean for x in a]


def leave_p_out_oracle(r: list[float], p: int) -> list[float]:
    """Paper appendix B.2: A_i = (1/C(k-1,p-1)) Σ_{s∋i} (A_s - Ā), A_s = max(r) - max_{l∉s} r_l."""
    k = len(r)
    subsets = list(combinations(range(k), p))
    a_s = {s: max(r) - max(r[j] for j in range(k) if j not in s) for s in subsets}
    a_bar = sum(a_s.values()) / len(subsets)
    return [sum(a_s[s] - a_bar for s in subsets if i in s) / math.comb(k - 1, p - 1) for i in range(k)]


def pkpo_oracle(r: list[float], k: int, loo1: bool) -> list[float]:
    """(1/C(n,k)) Σ_{|I|=k, I∋i} credit(I, i): max_I (PKPO s), or max_I - max_{I\\i} (s^(loo-1))."""
    n = len(r)
    out = []
    for i in range(n):
        total = 0.0
        for subset in combinations(range(n), k):
            if i in subset:
                chosen = [r[j] for j in subset]
                rest = [r[j] for j in subset if j != i]
                total += f_max(chosen) - (f_max(rest) if loo1 else 0.0)
        out.append(total / math.comb(n, k))
    return out


def majority_oracle(r: list[float], classes: list[int], biased: bool) -> list[float]:
    values: dict[int, list[float]] = {}
    for a, x in zip(classes, r, strict=True):
        values.setdefault(a, []).append(x)
    class_value = {a: sum(xs) / len(xs) for a, xs in values.items()}
    abstain_value = class_value.pop(-1, 0.0)
    delta = loo(f_majority(class_value, abstain_value), classes)
    return centred(delta) if biased else delta


def onehot_majority_reference(rewards: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """docs/estimators.md §8.2 as written: one-hot Y [B,n,A], counts C, C' = C - eye(A) [B,A,A], f row-wise.

    The library computes the same from scatter_add counts and the case table in O(B·n) memory; this literal
    form (A = n slots, a class lives in the slot of its first sample) is a vectorized cross-check.
    """
    b, n = rewards.shape
    slots = torch.arange(n)
    voter = classes >= 0  # [B, n]
    same = classes[:, :, None] == classes[:, None, :]  # [B, n, n]
    first = torch.where(same, slots, n).amin(dim=-1)  # [B, n]: slot of the class = its first sample
    y = ((first[:, :, None] == slots) & voter[:, :, None]).to(torch.float64)  # Y: [B, n, A]
    counts = y.sum(dim=1)  # C: [B, A]
    values = (y * rewards[:, :, None]).sum(dim=1) / counts.clamp(min=1)  # V: [B, A]
    n_abstain = (~voter).sum(dim=1)
    abstain_value = (rewards * ~voter).sum(dim=1) / n_abstain.clamp(min=1)  # [B]

    def f(c: torch.Tensor, v: torch.Tensor, v_abs: torch.Tensor) -> torch.Tensor:
        top_count = c.amax(dim=-1, keepdim=True)
        top = (c == top_count) & (c > 0)
        mean_top = (v * top).sum(dim=-1) / top.sum(dim=-1).clamp(min=1)
        return torch.where(top_count.squeeze(-1) > 0, mean_top, v_abs)

    f_full = f(counts, values, abstain_value)  # [B]
    removed = counts[:, None, :] - torch.eye(n, dtype=torch.float64)[None]  # C': [B, A, A]
    f_removed = f(removed, values[:, None, :].expand(b, n, n), abstain_value[:, None].expand(b, n))  # [B, A]
    delta_class = torch.where(counts > 0, f_full[:, None] - f_removed, 0.0)
    return delta_class.gather(1, first.clamp(max=n - 1)) * voter


def oracle(name: str, r: list[float], classes: list[int] | None, **kw: float) -> list[float]:
    """The advantages of one group with no failed samples (len(r) >= 2)."""
    match name:
        case "mean_loo":
            return loo(f_mean, r)
        case "passk_loo":
            return loo(f_max, r)
        case "passk_biased":
            return centred(loo(f_max, r))
        case "softmax_loo":
            return loo(f_softmax(kw["beta"]), r)
        case "passk_softmax_baseline":
            s = f_softmax(kw["beta"])
            return [max(r) - s(r[:i] + r[i + 1 :]) for i in range(len(r))]
        case "leave_p_out":
            return leave_p_out_oracle(r, min(int(kw["p"]), len(r) - 1))
        case "pkpo" | "pkpo_loo1":
            return pkpo_oracle(r, min(int(kw["k"]), len(r)), loo1=name == "pkpo_loo1")
        case "maj_loo" | "maj_biased":
            assert classes is not None
            return majority_oracle(r, classes, biased=name == "maj_biased")
    raise AssertionError(name)


def oracle_batch(
    name: str, rewards: list[list[float]], classes: list[list[int]] | None, **kw: float
) -> torch.Tensor:
    """Drop NaN samples per group, run the oracle on the rest, 0 for dropped samples and groups of <= 1."""
    rows = []
    for b, row in enumerate(rewards):
        keep = [i for i, x in enumerate(row) if not math.isnan(x)]
        out = [0.0] * len(row)
        if len(keep) >= 2:
            group_classes = [classes[b][i] for i in keep] if classes is not None else None
            for i, a in zip(keep, oracle(name, [row[i] for i in keep], group_classes, **kw), strict=True):
                out[i] = a
        rows.append(out)
    return torch.tensor(rows, dtype=torch.float64)


# ------------------------------------------------------------------------------------------ strategies

REWARD_KINDS = {
    "binary": st.sampled_from([0.0, 1.0]),
    "plus_minus_one": st.sampled_from([-1.0, 1.0]),
    "grid": st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    "continuous": st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False),
}


@st.composite
def batches(draw: st.DrawFn, max_b: int = 5, max_n: int = 8) -> list[list[float]]:
    """[B, n] rewards, B <= 5, n <= 8, binary / ±1 / tied grid / continuous, some NaN (failed) samples."""
    b = draw(st.integers(1, max_b))
    n = draw(st.integers(1, max_n))
    base = REWARD_KINDS[draw(st.sampled_from(sorted(REWARD_KINDS)))]
    element = st.one_of(base, base, base, st.just(NAN)) if draw(st.booleans()) else base
    return draw(st.lists(st.lists(element, min_size=n, max_size=n), min_size=b, max_size=b))


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> None:
    """|actual - expected| <= tol (1 + |expected|) elementwise; cheaper than torch.testing.assert_close."""
    assert actual.dtype == torch.float64
    assert actual.shape == expected.shape
    assert torch.allclose(actual, expected, rtol=tol, atol=tol), f"\n{actual}\n!=\n{expected}"


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("name", ["mean_loo", "passk_loo", "passk_biased"])
@EXAMPLES
@given(rewards=batches())
def test_loo_estimators_match_the_generic_loo(name: str, rewards: list[list[float]]) -> None:
    got = compute_advantages(torch.tensor(rewards, dtype=torch.float64), name)
    assert_close(got, oracle_batch(name, rewards, None))


@pytest.mark.parametrize("name", ["softmax_loo", "passk_softmax_baseline"])
@EXAMPLES
@given(rewards=batches(), beta=st.sampled_from([0.0, 0.3, 1.0, 4.0, 25.0]))
def test_softmax_estimators_match_the_generic_loo(name: str, rewards: list[list[float]], beta: float) -> None:
    got = compute_advantages(torch.tensor(rewards, dtype=torch.float64), name, beta=beta)
    assert_close(got, oracle_batch(name, rewards, None, beta=beta))


@EXAMPLES
@given(rewards=batches(), data=st.data())
def test_leave_p_out_matches_subset_enumeration(rewards: list[list[float]], data: st.DataObject) -> None:
    n = len(rewards[0])
    p = data.draw(st.integers(1, max(n - 1, 1)))
    got = compute_advantages(torch.tensor(rewards, dtype=torch.float64), "leave_p_out", p=p)
    assert_close(got, oracle_batch("leave_p_out", rewards, None, p=p))


@pytest.mark.parametrize("name", ["pkpo", "pkpo_loo1"])
@EXAMPLES
@given(rewards=batches(), data=st.data())
def test_pkpo_matches_subset_enumeration(name: str, rewards: list[list[float]], data: st.DataObject) -> None:
    k = data.draw(st.integers(1, len(rewards[0])))
    got = compute_advantages(torch.tensor(rewards, dtype=torch.float64), name, k=k)
    assert_close(got, oracle_batch(name, rewards, None, k=k))


@pytest.mark.parametrize("name", ["maj_loo", "maj_biased"])
@EXAMPLES
@given(rewards=batches(), data=st.data())
def test_majority_matches_the_generic_loo(name: str, rewards: list[list[float]], data: st.DataObject) -> None:
    b, n = len(rewards), len(rewards[0])
    # A few classes so that ties, runner-ups and abstentions (-1) are common; large ids are relabelled.
    ids = st.sampled_from([-1, 0, 1, 2, 3, 10**9])
    classes = data.draw(st.lists(st.lists(ids, min_size=n, max_size=n), min_size=b, max_size=b))
    got = compute_advantages(torch.tensor(rewards, dtype=torch.float64), name, classes=torch.tensor(classes))
    assert_close(got, oracle_batch(name, rewards, classes))


@EXAMPLES
@given(rewards=batches(), data=st.data())
def test_majority_matches_the_literal_onehot_construction(
    rewards: list[list[float]], data: st.DataObject
) -> None:
    r = torch.nan_to_num(torch.tensor(rewards, dtype=torch.float64), nan=0.0)
    ids = st.sampled_from([-1, 0, 1, 2, 3])
    classes = torch.tensor(data.draw(st.lists(st.lists(ids, min_size=r.shape[1], max_size=r.shape[1]),
                                             min_size=r.shape[0], max_size=r.shape[0])))  # fmt: skip
    got = compute_advantages(r, "maj_loo", classes=classes)
    expected = onehot_majority_reference(r, classes) if r.shape[1] >= 2 else torch.zeros_like(r)
    assert_close(got, expected)


@pytest.mark.parametrize("name", ["passk_biased", "maj_biased", "leave_p_out"])
@EXAMPLES
@given(rewards=batches())
def test_biased_estimators_are_centred(name: str, rewards: list[list[float]]) -> None:
    r = torch.tensor(rewards, dtype=torch.float64)
    classes = (torch.arange(r.numel()).reshape(r.shape) * 7) % 3 - 1
    adv = compute_advantages(r, name, p=1, classes=classes)
    assert_close(adv.sum(dim=1), torch.zeros(r.shape[0], dtype=torch.float64))
    assert bool((adv[torch.isnan(r)] == 0).all())


@EXAMPLES
@given(rewards=batches(max_b=3), data=st.data())
def test_advantages_follow_a_permutation_of_the_samples(
    rewards: list[list[float]], data: st.DataObject
) -> None:
    r = torch.tensor(rewards, dtype=torch.float64)
    n = r.shape[1]
    perm = torch.tensor(data.draw(st.permutations(range(n))))
    for name, p, k in [
        ("passk_loo", None, None),
        ("leave_p_out", 1, None),
        ("pkpo_loo1", None, max(n // 2, 1)),
    ]:
        adv = compute_advantages(r, name, p=p, k=k)
        assert_close(compute_advantages(r[:, perm], name, p=p, k=k), adv[:, perm])


@EXAMPLES
@given(
    classes=st.lists(st.sampled_from([-1, 0, 1, 2, 3]), min_size=1, max_size=9),
    values=st.fixed_dictionaries({a: st.sampled_from([0.0, 1.0, -1.0, 0.5]) for a in range(4)}),
    abstain_value=st.sampled_from([0.0, -1.0]),
    data=st.data(),
)
def test_maj_at_k_matches_subset_enumeration(
    classes: list[int], values: dict[int, float], abstain_value: float, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, len(classes)))
    f = f_majority(values, abstain_value)
    subsets = list(combinations(classes, k))
    expected = sum(f(s) for s in subsets) / len(subsets)
    got = maj_at_k_values(classes, values, k, abstain_value=abstain_value)
    assert got == pytest.approx(expected, rel=TOL, abs=TOL)


@EXAMPLES
@given(rewards=batches(max_b=3), data=st.data())
def test_maxg_at_k_matches_subset_enumeration(rewards: list[list[float]], data: st.DataObject) -> None:
    clean = [[0.0 if math.isnan(x) else x for x in row] for row in rewards]
    n = len(clean[0])
    k = data.draw(st.integers(1, n))
    expected = [sum(max(s) for s in combinations(row, k)) / math.comb(n, k) for row in clean]
    assert_close(
        maxg_at_k(torch.tensor(clean, dtype=torch.float64), k), torch.tensor(expected, dtype=torch.float64)
    )


@EXAMPLES
@given(n=st.integers(1, 3000), data=st.data())
def test_pass_at_k_matches_exact_fractions(n: int, data: st.DataObject) -> None:
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    got = pass_at_k(n, c, k)
    assert got == pytest.approx(float(exact), rel=1e-12, abs=1e-300)
    tensor = pass_at_k(torch.tensor([n, n]), torch.tensor([c, 0]), k)
    assert tensor.tolist() == pytest.approx([float(exact), 0.0], rel=1e-12, abs=1e-300)
