"""Backend registry: built-ins register by name with `@register_backend`, third parties by entry point.

Requests name their backend explicitly; there is no dispatch on dataset names.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points

from reward_server.backends.base import AnyBackend
from reward_server.errors import BackendNotFound, DuplicateBackend
from reward_server.settings import RewardSettings

BackendFactory = Callable[[RewardSettings], AnyBackend]
ENTRY_POINT_GROUP = "reward_server.backends"
BUILTIN_MODULES = ("reward_server.backends.math_sympy", "reward_server.backends.code_sandbox")

_factories: dict[str, BackendFactory] = {}
log = logging.getLogger(__name__)


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    """Register a backend factory under `name`; a second, different factory for one name is an error.

    Example:
        @register_backend("math")
        class MathBackend: ...
    """

    def decorator(factory: BackendFactory) -> BackendFactory:
        existing = _factories.get(name)
        if existing is not None and existing is not factory:
            raise DuplicateBackend(f"backend {name!r} is registered twice ({existing!r} and {factory!r})")
        _factories[name] = factory
        return factory

    return decorator


def registered_names() -> list[str]:
    return sorted(_factories)


def load_factories() -> dict[str, BackendFactory]:
    """Import the built-ins and the installed entry points; return every registered factory."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        register_backend(entry.name)(entry.load())
        log.info("loaded backend %r from entry point %s", entry.name, entry.value)
    return dict(_factories)


def create_backends(settings: RewardSettings) -> dict[str, AnyBackend]:
    return {name: factory(settings) for name, factory in load_factories().items()}


def get_backend(backends: Mapping[str, AnyBackend], name: str) -> AnyBackend:
    """Return the backend called `name`, or raise BackendNotFound naming the valid ones."""
    try:
        return backends[name]
    except KeyError:
        valid = ", ".join(sorted(backends)) or "none"
        raise BackendNotFound(f"unknown backend {name!r}; valid backends: {valid}") from None
