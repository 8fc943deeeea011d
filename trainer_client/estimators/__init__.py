"""k-sample advantage estimators (pass@k, majority vote, mean, softmax, PKPO) and pass@k / maj@k evaluation.

Everything here is a pure tensor function: no I/O, float64 inside. The trainer calls

    advantages = compute_advantages(rewards, "passk_loo")        # rewards [B, n], NaN = failed sample
    advantages = compute_advantages(rewards, "pkpo_loo1", k=4)   # pass@4 from n >= 4 samples
    advantages = compute_advantages(rewards, "maj_loo", classes=answer_classes)

and casts the float64 result to its training dtype. `available_estimators()` lists the names; the formulas
are in docs/estimators.md (§2 lists every estimator, §3 its parameters, §4 failed samples) and the paper
(section 3, appendix B). Importing this package registers the built-in estimators (decorators in `mean`,
`passk`, `softmax`, `pkpo` and `majority_vote`).
"""

from __future__ import annotations

# The modules below register the built-in estimators when imported (nothing else runs at import time).
from trainer_client.estimators import majority_vote, mean, passk, pkpo, softmax  # noqa: F401
from trainer_client.estimators.base import (
    ESTIMATORS,
    AdvantageKernel,
    Estimator,
    EstimatorParams,
    available_estimators,
    check_estimator_params,
    compute_advantages,
    register_estimator,
)
from trainer_client.estimators.majority_vote import maj_at_k, maj_at_k_values
from trainer_client.estimators.passk import pass_at_k
from trainer_client.estimators.pkpo import maxg_at_k

__all__ = [
    "ESTIMATORS",
    "AdvantageKernel",
    "Estimator",
    "EstimatorParams",
    "available_estimators",
    "check_estimator_params",
    "compute_advantages",
    "maj_at_k",
    "maj_at_k_values",
    "maxg_at_k",
    "pass_at_k",
    "register_estimator",
]
