"""verl plugin: registers every estimator of ours as a verl advantage estimator `ia_<name>`.

Installing this package is enough: verl 0.9 imports each entry point of the group `verl.plugins` on
`import verl` (`verl/__init__.py`), in every process, the trainer's included, and our pyproject declares

    [project.entry-points."verl.plugins"]
    inference_aware = "trainer_client.integrations.verl_plugin"

Then `algorithm.adv_estimator=ia_passk_loo` (or ia_mean_loo, ia_passk_biased, ia_leave_p_out, ia_softmax_loo,
ia_passk_softmax_baseline, ia_pkpo, ia_pkpo_loo1, ia_maj_loo, ia_maj_biased) with parameters in
`+algorithm.inference_aware.{k,p,beta}=...`. Older verl without entry points: set
`VERL_USE_EXTERNAL_MODULES=trainer_client.integrations.verl_plugin`.

verl logs a plugin that fails to import at DEBUG only, so a broken plugin would be silent: this module logs
its own failures at WARNING (and re-raises anything but a missing verl).
"""

from __future__ import annotations

import logging

from trainer_client.integrations.verl_estimators import make_estimator, verl_names

__all__ = ["register"]

log = logging.getLogger(__name__)


def register() -> list[str]:
    """Register `ia_<name>` for every estimator with verl's `register_adv_est`; idempotent.

    Returns:
        The registered verl names, sorted.

    Raises:
        ImportError: verl is not installed.
        ValueError: a name is already registered to another function (verl's own check).
    """
    # Lazy: trainer_client never needs verl otherwise. (verl ships py.typed; without verl, not found.)
    from verl.trainer.ppo import core_algos  # type: ignore[import-not-found,unused-ignore]

    registered = []
    for verl_name, name in sorted(verl_names().items()):
        existing = core_algos.ADV_ESTIMATOR_REGISTRY.get(verl_name)
        # verl refuses a second function under a name; ours is already there if this ran before.
        if existing is None or getattr(existing, "__module__", None) != make_estimator.__module__:
            core_algos.register_adv_est(verl_name)(make_estimator(name))
        registered.append(verl_name)
    return registered


def _register_on_import() -> None:
    try:
        names = register()
    except ImportError as exc:
        log.warning(
            "inference-aware verl plugin: verl could not be imported (%s); the ia_* advantage estimators "
            "are not registered. Install verl (pip install 'verl>=0.9,<0.10') in this environment.",
            exc,
        )
    except Exception:
        log.warning(
            "inference-aware verl plugin: registering the ia_* advantage estimators failed", exc_info=True
        )
        raise
    else:
        log.debug("inference-aware verl plugin: registered %s", ", ".join(names))


_register_on_import()
