"""Estimators: worked examples as tables, the public API contract, and edge cases.

Values quoted with 6 decimals in §9 are compared at 1e-6, exact fractions at 1e-12.
"""

from __future__ import annotations

import doctest
import math
from fractions import Fraction

import pytest
import torch
from torch import Tensor

import trainer_client.estimators as estimators
from trainer_client.estimators import (
    ESTIMATORS,
    EstimatorParams,
    available_estimators,
    base,
    compute_advantages,
    maj_at_k,
    maj_at_k_values,
    majority_vote,
    maxg_at_k,
    mean,
    pass_at_k,
    passk,
    pkpo,
    register_estimator,
    softmax,
)
from trainer_client.estimators.softmax import softmax_value_loo

EXACT = 1e-12
DECIMALS = 1e-6
NAN = float("nan")

R_1001 = [1.0, 0.0, 0.0, 1.0]
R_1000 = [1.0, 0.0, 0.0, 0.0]
R_CONT = [0.2, 0.9, 0.5, 0.7]


def row(values: list[float]) -> Tensor:
    return torch.tensor([values], dtype=torch.float64)


def assert_row(actual: Tensor, expected: list[float], tol: float) -> None:
    assert actual.dtype == torch.float64
    assert actual.shape == (1, len(expected))
    assert actual[0].tolist() == pytest.approx(expected, abs=tol)


# ------------------------------------------------------------------------------------- §9.1 - §9.3 tables

PAPER_TABLE = [
    # §9.1 binary r = [1,0,0,1], k = n = 4
    ("9.1", R_1001, "mean_loo", {}, [1 / 6, -1 / 6, -1 / 6, 1 / 6], EXACT),
    ("9.1", R_1001, "passk_loo", {}, [0.0, 0.0, 0.0, 0.0], EXACT),
    ("9.1", R_1001, "passk_biased", {}, [0.0, 0.0, 0.0, 0.0], EXACT),
    ("9.1", R_1001, "leave_p_out", {"p": 2}, [1 / 6, -1 / 6, -1 / 6, 1 / 6], EXACT),
    ("9.1", R_1001, "leave_p_out", {"p": 3}, [1 / 6, -1 / 6, -1 / 6, 1 / 6], EXACT),
    ("9.1", R_1001, "softmax_loo", {"beta": 1.0}, [0.154942, -0.113579, -0.113579, 0.154942], DECIMALS),
    (
        "9.1",
        R_1001,
        "passk_softmax_baseline",
        {"beta": 1.0},
        [0.423883, 0.155362, 0.155362, 0.423883],
        DECIMALS,
    ),
    # §9.2 r = [1,0,0,0]
    ("9.2", R_1000, "passk_loo", {}, [1.0, 0.0, 0.0, 0.0], EXACT),
    ("9.2", R_1000, "passk_biased", {}, [0.75, -0.25, -0.25, -0.25], EXACT),
    ("9.2", R_1000, "leave_p_out", {"p": 2}, [1 / 2, -1 / 6, -1 / 6, -1 / 6], EXACT),
    ("9.2", R_1000, "leave_p_out", {"p": 3}, [1 / 4, -1 / 12, -1 / 12, -1 / 12], EXACT),
    ("9.2", R_1000, "softmax_loo", {"beta": 1.0}, [0.475367, -0.10075, -0.10075, -0.10075], DECIMALS),
    # §9.3 continuous r = [0.2, 0.9, 0.5, 0.7]
    ("9.3", R_CONT, "passk_loo", {}, [0.0, 0.2, 0.0, 0.0], EXACT),
    ("9.3", R_CONT, "passk_biased", {}, [-0.05, 0.15, -0.05, -0.05], EXACT),
    ("9.3", R_CONT, "leave_p_out", {"p": 2}, [-1 / 15, 2 / 15, -1 / 15, 0.0], EXACT),
    ("9.3", R_CONT, "softmax_loo", {"beta": 1.0}, [-0.087568, 0.131483, -0.04022, 0.023077], DECIMALS),
    (
        "9.3",
        R_CONT,
        "passk_softmax_baseline",
        {"beta": 10.0},
        [0.029813, 0.22665, 0.024383, 0.007814],
        DECIMALS,
    ),
]


@pytest.mark.parametrize(("section", "rewards", "name", "kwargs", "expected", "tol"), PAPER_TABLE)
def test_paper_estimators_match_the_worked_examples(
    section: str, rewards: list[float], name: str, kwargs: dict[str, float], expected: list[float], tol: float
) -> None:
    assert_row(compute_advantages(row(rewards), name, **kwargs), expected, tol)  # type: ignore[arg-type]


def test_rloo_is_n_times_mean_loo() -> None:
    """§9.1: RLOO = [2/3, -2/3, -2/3, 2/3] = n · mean_loo (the paper's 1/k scale)."""
    assert_row(4 * compute_advantages(row(R_1001), "mean_loo"), [2 / 3, -2 / 3, -2 / 3, 2 / 3], EXACT)


def test_softmax_value_of_the_binary_group() -> None:
    """§9.1: S_1([1,0,0,1]) = 0.731059."""
    full, _ = softmax_value_loo(row(R_1001), 1.0)
    assert full.item() == pytest.approx(0.731059, abs=DECIMALS)


# ------------------------------------------------------------------------------------------ §9.4 majority

MAJORITY_TABLE = [
    # answers, f, LOO Δ, biased
    ("ABBA", 0.5, [0.5, -0.5, -0.5, 0.5], [0.5, -0.5, -0.5, 0.5]),
    ("AABC", 1.0, [2 / 3, 2 / 3, 0, 0], [1 / 3, 1 / 3, -1 / 3, -1 / 3]),
    ("ABBC", 0.0, [0, -1 / 3, -1 / 3, 0], [1 / 6, -1 / 6, -1 / 6, 1 / 6]),
    ("AAABB", 1.0, [0.5, 0.5, 0.5, 0, 0], [0.2, 0.2, 0.2, -0.3, -0.3]),
    ("AABBC", 0.5, [0.5, 0.5, -0.5, -0.5, 0], [0.5, 0.5, -0.5, -0.5, 0]),
    ("BBACAA", 1.0, [0, 0, 0.5, 0, 0.5, 0.5], [-0.25, -0.25, 0.25, -0.25, 0.25, 0.25]),
]


def majority_group(answers: str) -> tuple[Tensor, Tensor]:
    """Class A is correct (reward 1), every other class is wrong (0); class ids are the letters' codes."""
    classes = torch.tensor([[ord(a) for a in answers]])
    return (classes == ord("A")).to(torch.float64), classes


@pytest.mark.parametrize(("answers", "f", "loo", "biased"), MAJORITY_TABLE)
def test_majority_matches_the_worked_examples(
    answers: str, f: float, loo: list[float], biased: list[float]
) -> None:
    rewards, classes = majority_group(answers)
    assert_row(compute_advantages(rewards, "maj_loo", classes=classes), loo, EXACT)
    assert_row(compute_advantages(rewards, "maj_biased", classes=classes), biased, EXACT)
    # f itself: maj@k with k = n is the one-subset U-statistic.
    assert maj_at_k(classes[0], {ord("A")}, len(answers)) == pytest.approx(f, abs=EXACT)


def test_majority_with_plus_minus_one_rewards_scales_by_two() -> None:
    """Rewards ±1 (the paper's MATH/code setup): v = +1 / -1, so every Δ doubles."""
    rewards, classes = majority_group("AABC")
    got = compute_advantages(2 * rewards - 1, "maj_loo", classes=classes)
    assert_row(got, [4 / 3, 4 / 3, 0, 0], EXACT)


def test_abstentions_do_not_vote_and_no_vote_is_worth_the_abstainers_reward() -> None:
    classes = torch.tensor([[5, -1, -1, -1]])
    # A lone correct voter among abstainers: removing it leaves "no answer", worth the abstainers' 0.
    assert_row(compute_advantages(row([1, 0, 0, 0]), "maj_loo", classes=classes), [1, 0, 0, 0], EXACT)
    # The same with ±1 rewards: no answer is worth -1.
    assert_row(compute_advantages(row([1, -1, -1, -1]), "maj_loo", classes=classes), [2, 0, 0, 0], EXACT)
    # Nobody votes: f = no answer for every subset, no signal.
    assert_row(
        compute_advantages(row([0, 0, 0]), "maj_loo", classes=torch.full((1, 3), -1)), [0, 0, 0], EXACT
    )


# ------------------------------------------------------------------------------------- §9.5 - §9.6 PKPO


def test_chen_pass_at_k_of_two_correct_out_of_four() -> None:
    """§9.5: pass@k for k = 1..4 with n = 4, c = 2."""
    assert [pass_at_k(4, 2, k) for k in range(1, 5)] == pytest.approx([0.5, 5 / 6, 1.0, 1.0], abs=EXACT)


def test_chen_pass_at_k_example() -> None:
    assert pass_at_k(200, 3, 100) == 0.8768844221105527


PKPO_TABLE = [
    # §9.5 binary r = [1,0,0,1]
    (R_1001, 1, [0.25, 0, 0, 0.25], [0.25, 0, 0, 0.25]),
    (R_1001, 2, [1 / 2, 1 / 3, 1 / 3, 1 / 2], [1 / 3, 0, 0, 1 / 3]),
    (R_1001, 3, [0.75] * 4, [0.25, 0, 0, 0.25]),
    (R_1001, 4, [1.0] * 4, [0.0] * 4),
    # §9.6 continuous g = [0.2, 0.9, 0.5, 0.7]
    (R_CONT, 2, [0.35, 0.45, 0.35, 0.383333], [0, 0.216667, 0.05, 0.116667]),
    (R_CONT, 3, [0.625, 0.675, 0.625, 0.625], [0, 0.2, 0, 0.05]),
]


@pytest.mark.parametrize(("rewards", "k", "s", "loo1"), PKPO_TABLE)
def test_pkpo_matches_the_worked_examples(
    rewards: list[float], k: int, s: list[float], loo1: list[float]
) -> None:
    assert_row(compute_advantages(row(rewards), "pkpo", k=k), s, DECIMALS)
    assert_row(compute_advantages(row(rewards), "pkpo_loo1", k=k), loo1, DECIMALS)


@pytest.mark.parametrize(
    ("k", "expected"),
    [(1, [0.138889, -2 / 9, -2 / 9, 0.138889]), (2, [1 / 18, -1 / 3, -1 / 3, 1 / 18]), (3, [-0.25] * 4)],
)
def test_pkpo_eq29_loo_from_public_pieces(k: int, expected: list[float]) -> None:
    """§9.5 s^(loo) = s_i - (k/(n-1)) ρ^(g)(g_-i; k), built from `pkpo` and `maxg_at_k` (not registered)."""
    r = row(R_1001)
    n = r.shape[1]
    without = torch.stack(
        [maxg_at_k(torch.cat([r[:, :i], r[:, i + 1 :]], dim=1), k) for i in range(n)], dim=1
    )
    got = compute_advantages(r, "pkpo", k=k) - k / (n - 1) * without
    assert_row(got, expected, DECIMALS)


def test_centred_pkpo_and_pass_at_k_training_at_k_2() -> None:
    """§9.5, k = 2: centred PKPO is ±1/12 (rllm PR #743); Pass@k-Training is ±0.447214 (ρ = 5/6, σ = √5/6)."""
    s = compute_advantages(row(R_1001), "pkpo", k=2)
    centred = s - s.mean()
    assert_row(centred, [1 / 12, -1 / 12, -1 / 12, 1 / 12], EXACT)
    rho = pass_at_k(4, 2, 2)
    sigma = math.sqrt(rho * (1 - rho))
    assert_row(4 / 2 * centred / sigma, [0.447214, -0.447214, -0.447214, 0.447214], DECIMALS)


@pytest.mark.parametrize(("k", "rho"), [(2, 0.766667), (3, 0.85)])
def test_maxg_at_k_matches_the_worked_example(k: int, rho: float) -> None:
    assert maxg_at_k(row(R_CONT), k).item() == pytest.approx(rho, abs=DECIMALS)


def test_maxg_at_k_of_binary_rewards_is_chen() -> None:
    r = torch.tensor([[1.0] * 3 + [0.0] * 17, [1.0] * 9 + [0.0] * 11])
    expected = [pass_at_k(20, 3, 7), pass_at_k(20, 9, 7)]
    assert maxg_at_k(r, 7).tolist() == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------------ §9.7 maj@k


def test_maj_at_k_of_aabbc() -> None:
    assert maj_at_k(b"AABBC", {ord("A")}, 3) == pytest.approx(0.433333, abs=DECIMALS)


@pytest.mark.parametrize(
    ("k", "expected"),
    list(enumerate([0.428571, 0.428571, 0.514286, 0.628571, 0.714286, 0.785714, 1.0], start=1)),
)
def test_maj_at_k_of_aaabbcd(k: int, expected: float) -> None:
    classes = torch.tensor([0, 0, 0, 1, 1, 2, 3])
    assert maj_at_k(classes, torch.tensor([0]), k) == pytest.approx(expected, abs=DECIMALS)


def test_maj_at_one_and_two_are_the_fraction_correct() -> None:
    """§6.1 check (with everyone voting; a correct vote beside an abstention wins, so then maj@2 > maj@1)."""
    classes = [0, 1, 1, 2, 3, 0, 3, 1, 0, 2]
    assert maj_at_k(classes, {0}, 1) == pytest.approx(0.3, abs=EXACT)
    assert maj_at_k(classes, {0}, 2) == pytest.approx(0.3, abs=EXACT)
    with_abstentions = [0, 1, 1, 2, -1, 0, 3, 1, 0, -1]
    assert maj_at_k(with_abstentions, {0}, 1) == pytest.approx(0.3, abs=EXACT)
    # pairs: {0,0}: 3 wins, {0, abstain}: 6 wins, {0, wrong}: 15 ties worth 1/2 each; C(10, 2) = 45
    assert maj_at_k(with_abstentions, {0}, 2) == pytest.approx((3 + 6 + 15 / 2) / 45, abs=EXACT)


def test_maj_at_k_continuous_values_and_abstain_value() -> None:
    # Only abstainers: every subset is "no answer".
    assert maj_at_k_values([-1, -1, -1], {}, 2, abstain_value=-1.0) == -1.0
    assert maj_at_k_values([0, 0, 1], {0: 0.5, 1: 2.0}, 3) == pytest.approx(0.5, abs=EXACT)


def test_maj_at_k_at_large_n_stays_exact() -> None:
    classes = [0] * 60 + [1] * 55 + [2] * 40 + [-1] * 45  # n = 200
    got = maj_at_k(classes, {0}, 100)
    assert 0.5 < got < 1.0
    assert maj_at_k(classes, {0, 1, 2}, 100) == pytest.approx(1.0, abs=EXACT)


@pytest.mark.parametrize(("classes", "k"), [([0, 1], 0), ([0, 1], 3), ([0, -2], 1)])
def test_maj_at_k_rejects_bad_arguments(classes: list[int], k: int) -> None:
    with pytest.raises(ValueError, match="k must|classes must"):
        maj_at_k(classes, {0}, k)


# ----------------------------------------------------------------------------------------- relations


def random_rewards(b: int, n: int, seed: int, binary: bool = False) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand((b, n), generator=gen, dtype=torch.float64)
    return (r < 0.3).to(torch.float64) if binary else torch.round(r * 4) / 4  # ties on a grid


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_leave_p_out_ends_are_biased_pass_at_k_and_mean(n: int) -> None:
    r = random_rewards(64, n, seed=n)
    lpo1 = compute_advantages(r, "leave_p_out", p=1)
    torch.testing.assert_close(lpo1, compute_advantages(r, "passk_biased"), rtol=0, atol=EXACT)
    lpo_last = compute_advantages(r, "leave_p_out", p=n - 1)
    torch.testing.assert_close(lpo_last, compute_advantages(r, "mean_loo"), rtol=0, atol=EXACT)


@pytest.mark.parametrize("n", [2, 4, 7])
def test_pkpo_at_n_equals_k_is_the_paper_estimator(n: int) -> None:
    """§5.4: with n = k, s^(loo-1) is best-minus-second-best and s is f(y) = max(r) (REINFORCE)."""
    r = random_rewards(64, n, seed=10 + n)
    torch.testing.assert_close(compute_advantages(r, "pkpo_loo1", k=n), compute_advantages(r, "passk_loo"))
    torch.testing.assert_close(compute_advantages(r, "pkpo", k=n), r.amax(dim=1, keepdim=True).expand(-1, n))


def test_pkpo_at_k_1_is_reinforce_over_n() -> None:
    r = random_rewards(16, 6, seed=3)
    torch.testing.assert_close(compute_advantages(r, "pkpo", k=1), r / 6)


def test_softmax_limits() -> None:
    r = random_rewards(64, 6, seed=4)
    torch.testing.assert_close(
        compute_advantages(r, "softmax_loo", beta=0.0), compute_advantages(r, "mean_loo")
    )
    # Rewards on a 1/4 grid, β = 400: e^{-100} is below float64 resolution, so the baseline is max(r_-i).
    torch.testing.assert_close(
        compute_advantages(r, "passk_softmax_baseline", beta=400.0), compute_advantages(r, "passk_loo")
    )
    torch.testing.assert_close(
        compute_advantages(r, "softmax_loo", beta=400.0), compute_advantages(r, "passk_loo")
    )


def test_softmax_is_stable_at_large_beta() -> None:
    r = torch.tensor([[1.0, 0.0], [1.0, 1.0 - 1e-12], [5.0, -5.0]], dtype=torch.float64)
    adv = compute_advantages(r, "softmax_loo", beta=1e6)
    assert torch.isfinite(adv).all()
    assert adv[0].tolist() == pytest.approx([1.0, 0.0], abs=EXACT)
    assert adv[2].tolist() == pytest.approx([10.0, 0.0], abs=EXACT)


def test_pkpo_binary_closed_forms_at_large_n() -> None:
    """§5.1 / §5.3 at n = 1100, k = 550, where C(n, k) overflows float64; exact values from Fractions."""
    n, k, c = 1100, 550, 3
    r = torch.zeros((1, n), dtype=torch.float64)
    r[0, :c] = 1.0
    s = compute_advantages(r, "pkpo", k=k)[0]
    loo1 = compute_advantages(r, "pkpo_loo1", k=k)[0]
    rho_minus = 1 - Fraction(math.comb(n - 1 - c, k - 1), math.comb(n - 1, k - 1))
    correct_loo1 = Fraction(k, n) * Fraction(math.comb(n - c, k - 1), math.comb(n - 1, k - 1))
    assert s[0].item() == pytest.approx(k / n, rel=1e-9)
    assert s[-1].item() == pytest.approx(float(Fraction(k, n) * rho_minus), rel=1e-9)
    assert loo1[0].item() == pytest.approx(float(correct_loo1), rel=1e-9)
    assert loo1[-1].item() == 0.0
    assert maxg_at_k(r, k).item() == pytest.approx(pass_at_k(n, c, k), rel=1e-9)


# --------------------------------------------------------------------------------------- API contract


def test_available_estimators_are_the_documented_names() -> None:
    assert available_estimators() == sorted(
        [
            "mean_loo",
            "passk_loo",
            "passk_biased",
            "maj_loo",
            "maj_biased",
            "leave_p_out",
            "softmax_loo",
            "passk_softmax_baseline",
            "pkpo",
            "pkpo_loo1",
        ]
    )
    assert set(ESTIMATORS) == set(available_estimators())
    assert all(entry.summary for entry in ESTIMATORS.values())


def test_a_second_kernel_under_a_taken_name_is_refused() -> None:
    def other(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
        return rewards

    with pytest.raises(ValueError, match="registered twice"):
        register_estimator("passk_loo")(other)
    assert ESTIMATORS["passk_loo"].kernel is passk.passk_loo
    register_estimator("passk_loo")(passk.passk_loo)  # the same kernel again is a no-op


def test_registering_a_new_estimator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "ESTIMATORS", dict(base.ESTIMATORS))

    @register_estimator("zero_test")
    def zero(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
        """Always zero."""
        return torch.zeros_like(rewards)

    assert "zero_test" in base.available_estimators()
    assert compute_advantages(row([1, 2]), "zero_test").tolist() == [[0.0, 0.0]]


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown estimator 'grpo'; valid estimators: leave_p_out, maj_biased"
    ):
        compute_advantages(row(R_1001), "grpo")


@pytest.mark.parametrize(
    ("name", "missing"),
    [("leave_p_out", "p"), ("softmax_loo", "beta"), ("passk_softmax_baseline", "beta"), ("pkpo", "k"),
     ("pkpo_loo1", "k"), ("maj_loo", "classes"), ("maj_biased", "classes")],
)  # fmt: skip
def test_a_missing_argument_is_named(name: str, missing: str) -> None:
    with pytest.raises(ValueError, match=f"requires {missing}="):
        compute_advantages(row(R_1001), name)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "passk_loo", "k": 2}, r"k=2 != group size n=4: 'passk_loo' .* use 'pkpo' or 'pkpo_loo1'"),
        ({"name": "maj_loo", "k": 3, "classes": torch.zeros((1, 4), dtype=torch.int64)}, "k=3 != group size"),
        ({"name": "pkpo", "k": 5}, "k=5 exceeds the group size n=4"),
        ({"name": "pkpo", "k": 0}, "k must be a positive int"),
        ({"name": "pkpo", "k": 2.0}, "k must be a positive int"),
        ({"name": "leave_p_out", "p": 4}, r"p must satisfy 1 <= p <= n - 1 = 3"),
        ({"name": "leave_p_out", "p": 0}, "p must satisfy"),
        ({"name": "softmax_loo", "beta": -1.0}, "beta must be finite and >= 0"),
        ({"name": "softmax_loo", "beta": math.inf}, "beta must be finite"),
        (
            {"name": "maj_loo", "classes": torch.zeros((1, 3), dtype=torch.int64)},
            "classes must have the shape",
        ),
        ({"name": "maj_loo", "classes": torch.zeros((1, 4))}, "classes must be an integer tensor"),
        ({"name": "maj_loo", "classes": torch.tensor([[0, -2, 1, 1]])}, "classes must be >= -1"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compute_advantages(row(R_1001), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rewards", "match"),
    [
        (torch.zeros(4), r"shape \[B, n\]"),
        (torch.tensor([[1.0, math.inf]]), "must be finite"),
        ([[1.0, 0.0]], "must be a torch.Tensor"),
    ],
)
def test_bad_rewards_are_refused(rewards: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compute_advantages(rewards, "passk_loo")  # type: ignore[arg-type]


def test_mean_loo_accepts_and_ignores_k() -> None:
    r = random_rewards(8, 6, seed=5)
    for k in (1, 3, 6):
        torch.testing.assert_close(compute_advantages(r, "mean_loo", k=k), compute_advantages(r, "mean_loo"))


def test_k_equal_to_n_is_accepted_by_the_paper_estimators() -> None:
    torch.testing.assert_close(compute_advantages(row(R_CONT), "passk_loo", k=4), row([0, 0.2, 0, 0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int64, torch.bool])
def test_any_real_dtype_in_float64_out(dtype: torch.dtype) -> None:
    r = torch.tensor([[1, 0, 0, 1], [0, 0, 0, 1]]).to(dtype)
    adv = compute_advantages(r, "passk_biased")
    assert adv.dtype == torch.float64
    assert adv.tolist() == [[0.0] * 4, [-0.25, -0.25, -0.25, 0.75]]


def test_rewards_that_require_grad_give_constant_advantages() -> None:
    r = torch.tensor([[1.0, 0.0, 0.5]], requires_grad=True)
    assert not compute_advantages(r, "mean_loo").requires_grad


def test_failed_samples_are_dropped_and_get_zero() -> None:
    r = torch.tensor(
        [
            [1.0, NAN, 0.0, 0.0],  # n_eff = 3
            [NAN, NAN, NAN, NAN],  # n_eff = 0
            [NAN, 1.0, NAN, NAN],  # n_eff = 1
            [1.0, 0.0, 0.0, 0.0],  # n_eff = 4
        ],
        dtype=torch.float64,
    )
    adv = compute_advantages(r, "passk_biased")
    assert adv[0].tolist() == pytest.approx([2 / 3, 0.0, -1 / 3, -1 / 3], abs=EXACT)
    assert adv[1].tolist() == [0.0] * 4
    assert adv[2].tolist() == [0.0] * 4
    assert adv[3].tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25], abs=EXACT)


def test_pkpo_uses_k_eff_in_small_groups() -> None:
    """§7.6: a group with n_eff < k uses k_eff = min(k, n_eff)."""
    r = torch.tensor([[1.0, NAN, 0.0, NAN, 0.5, NAN], [0.2, 0.9, 0.5, 0.7, 0.1, 0.3]], dtype=torch.float64)
    adv = compute_advantages(r, "pkpo_loo1", k=4)
    small = compute_advantages(row([1.0, 0.0, 0.5]), "pkpo_loo1", k=3)[0]
    assert adv[0, [0, 2, 4]].tolist() == pytest.approx(small.tolist(), abs=EXACT)
    assert adv[0, [1, 3, 5]].tolist() == [0.0] * 3
    assert adv[1].tolist() == pytest.approx(
        compute_advantages(r[1:], "pkpo_loo1", k=4)[0].tolist(), abs=EXACT
    )


def test_leave_p_out_uses_p_eff_in_small_groups() -> None:
    r = torch.tensor([[1.0, NAN, 0.0, NAN], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    adv = compute_advantages(r, "leave_p_out", p=3)  # the first group has n_eff = 2, so p_eff = 1
    assert adv[0].tolist() == pytest.approx([0.5, 0.0, -0.5, 0.0], abs=EXACT)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_group_of_one_and_empty_batches_give_zeros(name: str) -> None:
    one = compute_advantages(
        row([1.0]), name, classes=torch.zeros((1, 1), dtype=torch.int64), k=1, p=1, beta=1.0
    )
    assert one.tolist() == [[0.0]]
    classes = torch.zeros((0, 4), dtype=torch.int64)
    empty = compute_advantages(torch.zeros((0, 4)), name, classes=classes, k=4, p=1, beta=1.0)
    assert empty.shape == (0, 4)
    assert empty.dtype == torch.float64


def test_pass_at_k_broadcasts_and_validates() -> None:
    n = torch.tensor([[10], [20]])
    got = pass_at_k(n, torch.tensor([0, 1, 5]), 3)
    assert got.shape == (2, 3)
    assert got[1, 1].item() == pytest.approx(3 / 20, rel=1e-12)
    assert pass_at_k(5, 0, 5) == 0.0
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(torch.tensor([4, 4]), 1, torch.tensor([1, 5]))


def test_pass_at_k_keeps_tiny_rates_and_long_products() -> None:
    """-expm1 keeps precision when the pass rate is near 0; long products take the lgamma path."""
    assert pass_at_k(10**6, 1, 1) == pytest.approx(1e-6, rel=1e-12)
    assert pass_at_k(10**7, 1, 3) == pytest.approx(3e-7, rel=1e-12)
    n, c, k = 10**7, 5000, 5000  # a 5000-term product on 1000 entries, in chunks
    got = pass_at_k(torch.full((1000,), n), c, k)
    exact = -math.expm1(math.fsum(math.log1p(-k / (n - j)) for j in range(c)))
    assert got.tolist() == pytest.approx([exact] * 1000, rel=1e-12)


def test_pass_at_k_lgamma_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passk, "_PRODUCT_FORM_MAX", 0)
    """Only used for products longer than 2**26 terms in all; absolute error about 1e-10 at n ~ 1e5."""
    for n, c, k in [(10**5, 50, 300), (10**5, 1, 1), (200, 3, 100), (10, 9, 2)]:
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-9)


@pytest.mark.parametrize("module", [base, mean, passk, softmax, pkpo, majority_vote, estimators])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE)  # type: ignore[arg-type]
    assert result.failed == 0
