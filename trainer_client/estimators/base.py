"""Estimator registry, the batch entry point `compute_advantages`, and shared float64 binomial helpers.

An estimator is a pure kernel `(rewards [B, n], classes [B, n] | None, params) -> advantages [B, n]` that
sees only dense groups: every row has exactly n valid samples (n >= 2) and `params.k`/`params.p` are
already resolved for that n. `compute_advantages` owns everything else: argument checks, float64, and
failed samples (NaN rewards), which it drops by compacting the rows that share a valid count n_eff into one
dense call per distinct n_eff (a loop over at most n + 1 sizes, never over the batch).

Kernels register by name with `@register_estimator`; a second kernel under one name is refused.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import torch
from torch import Tensor

# How an estimator reads `k`:
#   "group":   k is the group size: k=None means n, and any other k than n is refused (paper estimators);
#   "ignored": the estimator does not depend on k (accepted when 1 <= k <= n, then unused);
#   "subset":  k is required, 1 <= k <= n, and the kernel uses k_eff = min(k, n_eff) (PKPO).
KPolicy = Literal["group", "ignored", "subset"]
Requirement = Literal["k", "p", "beta", "classes"]

BUILTIN_MODULES = (
    "trainer_client.estimators.mean",
    "trainer_client.estimators.passk",
    "trainer_client.estimators.softmax",
    "trainer_client.estimators.pkpo",
    "trainer_client.estimators.majority_vote",
)


@dataclass(frozen=True)
class EstimatorParams:
    """Parameters of one dense kernel call, already resolved for its group size n = rewards.shape[1].

    Attributes:
        k: samples per objective evaluation: n for the paper estimators, min(k, n) for PKPO.
        p: leave-p-out size, min(p, n - 1); None when the estimator does not use it.
        beta: softmax inverse temperature (>= 0, finite); None when unused.
    """

    k: int
    p: int | None = None
    beta: float | None = None


class AdvantageKernel(Protocol):
    """A registered estimator: float64 rewards [B, n] (no NaN, n >= 2) -> float64 advantages [B, n]."""

    def __call__(self, rewards: Tensor, classes: Tensor | None, params: EstimatorParams, /) -> Tensor: ...


KernelT = TypeVar("KernelT", bound=AdvantageKernel)


@dataclass(frozen=True)
class Estimator:
    """A registry entry: the kernel plus what `compute_advantages` must check before calling it."""

    name: str
    kernel: AdvantageKernel
    requires: tuple[Requirement, ...]
    k_policy: KPolicy
    summary: str


ESTIMATORS: dict[str, Estimator] = {}


def register_estimator(
    name: str, *, requires: tuple[Requirement, ...] = (), k_policy: KPolicy = "group"
) -> Callable[[KernelT], KernelT]:
    """Register a kernel under `name`; registering a different kernel under a taken name is an error.

    Args:
        name: the public name passed to `compute_advantages`.
        requires: keyword arguments of `compute_advantages` that must not be None ("k", "p", "beta",
            "classes").
        k_policy: how `k` is read, see `KPolicy` ("group", "ignored" or "subset").

    Returns:
        A decorator that stores the kernel and returns it unchanged.

    Raises:
        ValueError: `name` is already registered to another kernel.

    Example:
        @register_estimator("passk_loo")
        def passk_loo(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor: ...
    """

    def decorator(kernel: KernelT) -> KernelT:
        existing = ESTIMATORS.get(name)
        if existing is not None and existing.kernel is not kernel:
            raise ValueError(f"estimator {name!r} is registered twice ({existing.kernel!r} and {kernel!r})")
        summary = (kernel.__doc__ or "").strip().split("\n", 1)[0]
        ESTIMATORS[name] = Estimator(name, kernel, tuple(requires), k_policy, summary)
        return kernel

    return decorator


def load_builtins() -> dict[str, Estimator]:
    """Import the built-in estimator modules (each registers its kernels) and return the registry."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return ESTIMATORS


def available_estimators() -> list[str]:
    """Names accepted by `compute_advantages`, sorted.

    Example:
        >>> "passk_loo" in available_estimators()
        True
    """
    return sorted(load_builtins())


def get_estimator(name: str) -> Estimator:
    """Return the registry entry for `name`, or raise ValueError listing the valid names."""
    registry = load_builtins()
    try:
        return registry[name]
    except KeyError:
        valid = ", ".join(sorted(registry))
        raise ValueError(f"unknown estimator {name!r}; valid estimators: {valid}") from None


def compute_advantages(
    rewards: Tensor,
    name: str,
    *,
    k: int | None = None,
    p: int | None = None,
    beta: float | None = None,
    classes: Tensor | None = None,
) -> Tensor:
    """Per-sample advantages of the k-sample objective estimator `name` for a batch of groups.

    Row b of `rewards` holds the n samples of one prompt. A NaN reward marks a failed sample: it is dropped,
    the rest of its group is treated as a group of n_eff samples, and its advantage is 0. A group with
    n_eff <= 1 gets all-zero advantages (leave-one-out is undefined). Keyword arguments the estimator does
    not use are ignored; `k` is always checked (see below).

    `k` by estimator:
        - paper estimators (`mean_loo`, `passk_loo`, `passk_biased`, `maj_loo`, `maj_biased`, `leave_p_out`,
          `softmax_loo`, `passk_softmax_baseline`): the objective uses the whole group, k = n (k = n_eff in a
          group with failed samples). `k` may be omitted; any value other than n raises ValueError, because
          these are defined for k = n only; use `pkpo`/`pkpo_loo1` for pass@k from n > k samples.
          `mean_loo` accepts any 1 <= k <= n and ignores it: its k-subset U-statistic does not depend on k.
        - `pkpo`, `pkpo_loo1`: `k` is required, 1 <= k <= n; a group with n_eff < k uses
          k_eff = min(k, n_eff).

    Args:
        rewards: float tensor [B, n]; NaN = failed sample. Finite values otherwise.
        name: a registered estimator, see `available_estimators()`.
        k: samples per objective evaluation (see above).
        p: leave-p-out size for `leave_p_out`, 1 <= p <= n - 1 (a group with n_eff <= p uses n_eff - 1).
        beta: softmax inverse temperature for `softmax_loo` and `passk_softmax_baseline`, finite and >= 0.
        classes: int tensor [B, n] of answer classes for `maj_loo`/`maj_biased`; -1 = no answer (abstains).

    Returns:
        float64 advantages [B, n] on the device of `rewards` (the caller casts to the training dtype).

    Raises:
        ValueError: unknown `name`, a required argument missing, or an argument out of range or of the
            wrong shape; the message names the argument.

    Example:
        >>> import torch
        >>> compute_advantages(torch.tensor([[0.2, 0.9, 0.5, 0.7]]), "passk_loo")
        tensor([[0.0000, 0.2000, 0.0000, 0.0000]], dtype=torch.float64)
        >>> compute_advantages(torch.tensor([[1.0, float("nan"), 0.0]]), "mean_loo")
        tensor([[ 0.5000,  0.0000, -0.5000]], dtype=torch.float64)
    """
    estimator = get_estimator(name)
    values = _check_rewards(rewards)
    batch, n = values.shape
    k, p, beta = _resolve_params(estimator, n, k=k, p=p, beta=beta)
    if "classes" in estimator.requires and classes is None:
        raise ValueError(f"estimator {name!r} requires classes=...")
    class_ids = _check_classes(classes, values.shape) if "classes" in estimator.requires else None

    def params_for(n_eff: int) -> EstimatorParams:
        k_eff = min(k, n_eff) if estimator.k_policy == "subset" and k is not None else n_eff
        p_eff = min(p, n_eff - 1) if p is not None else None
        return EstimatorParams(k=k_eff, p=p_eff, beta=beta)

    advantages = torch.zeros((batch, n), dtype=torch.float64, device=values.device)
    if batch == 0 or n < 2:
        return advantages
    valid = ~torch.isnan(values)  # [B, n]
    if bool(valid.all()):
        return estimator.kernel(values, class_ids, params_for(n))

    # Failed samples: move each row's valid samples to the front (stable, so order is kept), then run one
    # dense kernel call per distinct valid count n_eff and scatter the results back to their positions.
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)  # [B, n]
    n_valid = valid.sum(dim=1)  # [B]
    for n_eff in torch.unique(n_valid).tolist():
        if n_eff < 2:
            continue  # n_eff <= 1: advantages stay 0
        rows = torch.nonzero(n_valid == n_eff).squeeze(1)  # [B_m]
        cols = order[rows, :n_eff]  # [B_m, n_eff]
        sub_rewards = values[rows].gather(1, cols)
        sub_classes = class_ids[rows].gather(1, cols) if class_ids is not None else None
        sub_adv = estimator.kernel(sub_rewards, sub_classes, params_for(n_eff))  # [B_m, n_eff]
        advantages[rows.unsqueeze(1), cols] = sub_adv
    return advantages


def check_estimator_params(
    name: str, n: int, *, k: int | None = None, p: int | None = None, beta: float | None = None
) -> Estimator:
    """Check `k`, `p` and `beta` for estimator `name` and groups of n samples, as `compute_advantages` does.

    This is the part of `compute_advantages`'s argument checks that needs no data, so a configuration can be
    checked before any sample exists (`trainer_client.config` does at load time). Like `compute_advantages`,
    it ignores `p` and `beta` for an estimator that does not use them, and `classes` is not checked here.

    Args:
        name: a registered estimator, see `available_estimators()`.
        n: the group size, samples per prompt.
        k, p, beta: as for `compute_advantages`.

    Returns:
        The registry entry of `name` (its `requires` and `k_policy` say which parameters it uses).

    Raises:
        ValueError: unknown `name`, a required parameter missing, or one out of range for n; the message
            names the parameter.

    Example:
        >>> check_estimator_params("pkpo", 8, k=4).k_policy
        'subset'
        >>> check_estimator_params("leave_p_out", 4, p=4)
        Traceback (most recent call last):
        ...
        ValueError: p must satisfy 1 <= p <= n - 1 = 3, got p=4
    """
    estimator = get_estimator(name)
    _resolve_params(estimator, n, k=k, p=p, beta=beta)
    return estimator


def _resolve_params(
    estimator: Estimator, n: int, *, k: int | None, p: int | None, beta: float | None
) -> tuple[int | None, int | None, float | None]:
    """The checked (k, p, beta) for groups of n; p and beta are None when the estimator does not use them."""
    given: dict[Requirement, object] = {"k": k, "p": p, "beta": beta}
    for requirement in estimator.requires:
        if requirement in given and given[requirement] is None:
            raise ValueError(f"estimator {estimator.name!r} requires {requirement}=...")
    k = _check_k(estimator, k, n)
    p = _check_p(p, n) if "p" in estimator.requires else None
    beta = _check_beta(beta) if "beta" in estimator.requires else None
    return k, p, beta


def _check_rewards(rewards: Tensor) -> Tensor:
    if not isinstance(rewards, Tensor):
        raise ValueError(f"rewards must be a torch.Tensor [B, n], got {type(rewards).__name__}")
    if rewards.dim() != 2:
        raise ValueError(f"rewards must have shape [B, n], got {tuple(rewards.shape)}")
    if rewards.is_complex():
        raise ValueError("rewards must be real")
    values = rewards.detach().to(torch.float64)
    if bool(torch.isinf(values).any()):
        raise ValueError("rewards must be finite (NaN marks a failed sample; inf is not allowed)")
    return values


def _check_k(estimator: Estimator, k: int | None, n: int) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k > n:
        raise ValueError(f"k={k} exceeds the group size n={n}")
    if estimator.k_policy == "group" and k != n:
        raise ValueError(
            f"k={k} != group size n={n}: {estimator.name!r} uses the whole group (k = n); "
            "use 'pkpo' or 'pkpo_loo1' for pass@k from n > k samples"
        )
    return k


def _check_p(p: int | None, n: int) -> int:
    if isinstance(p, bool) or not isinstance(p, int):
        raise ValueError(f"p must be an int, got {p!r}")
    if not 1 <= p <= max(n - 1, 1):
        raise ValueError(f"p must satisfy 1 <= p <= n - 1 = {n - 1}, got p={p}")
    return p


def _check_beta(beta: float | None) -> float:
    if isinstance(beta, bool) or not isinstance(beta, int | float):
        raise ValueError(f"beta must be a real number, got {beta!r}")
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be finite and >= 0, got beta={beta}")
    return float(beta)


def _check_classes(classes: Tensor | None, shape: torch.Size) -> Tensor:
    if not isinstance(classes, Tensor):
        raise ValueError(f"classes must be an int torch.Tensor [B, n], got {type(classes).__name__}")
    if classes.shape != shape:
        raise ValueError(f"classes must have the shape of rewards {tuple(shape)}, got {tuple(classes.shape)}")
    if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
        raise ValueError(f"classes must be an integer tensor, got {classes.dtype}")
    if classes.numel() and int(classes.min()) < -1:
        raise ValueError("classes must be >= -1 (-1 = no answer)")
    return classes.to(torch.int64)


def log_binom(top: Tensor, bottom: Tensor | int) -> Tensor:
    """log C(top, bottom) in float64, elementwise; -inf where the binomial is 0 (bottom < 0 or > top).

    Example:
        >>> log_binom(torch.tensor([4.0, 2.0]), 2).exp()
        tensor([6., 1.], dtype=torch.float64)
    """
    top = top.to(torch.float64)
    bottom_t = torch.as_tensor(bottom, dtype=torch.float64, device=top.device)
    ok = (bottom_t >= 0) & (bottom_t <= top)
    # Clamp the arguments of lgamma where the binomial is 0 so no inf - inf NaN appears before the mask.
    safe_top = torch.where(ok, top, torch.zeros_like(top))
    safe_bottom = torch.where(ok, bottom_t, torch.zeros_like(bottom_t))
    value = (
        torch.lgamma(safe_top + 1) - torch.lgamma(safe_bottom + 1) - torch.lgamma(safe_top - safe_bottom + 1)
    )
    return torch.where(ok, value, torch.full_like(value, -math.inf))


def binom_ratio(top: Tensor, bottom: int, n: int, k: int) -> Tensor:
    """C(top, bottom) / C(n, k) elementwise in float64 via lgamma (no overflow at n ~ 1000); 0 where C = 0.

    Example:
        >>> binom_ratio(torch.arange(4.0), 1, 4, 2)  # C(i, 1) / C(4, 2)
        tensor([0.0000, 0.1667, 0.3333, 0.5000], dtype=torch.float64)
    """
    return torch.exp(
        log_binom(top, bottom) - math.lgamma(n + 1) + math.lgamma(k + 1) + math.lgamma(n - k + 1)
    )


def exclusive_cumsum(x: Tensor) -> Tensor:
    """Σ_{j<i} x_j along dim 1: [B, n] -> [B, n] (shifted, not cumsum - x, so no cancellation)."""
    return torch.nn.functional.pad(torch.cumsum(x, dim=1)[:, :-1], (1, 0))


def reverse_exclusive_cumsum(x: Tensor) -> Tensor:
    """Σ_{j>i} x_j along dim 1: [B, n] -> [B, n]."""
    return torch.flip(exclusive_cumsum(torch.flip(x, dims=[1])), dims=[1])
