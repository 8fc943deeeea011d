"""Backend registry: built-ins register by name with `@register_backend`, third parties by entry point.

Requests name their backend explicitly; there is no dispatch on dataset names. Every backend is checked
against `backends.base.RewardBackend` when the server creates it (start-up): a plug-in that lacks a member,
or has a sync method where an async one is needed, stops the server with an `InvalidBackend` that names the
plug-in, its entry point and what is missing, instead of failing on some later request.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points

from pydantic import BaseModel

from reward_server.backends.base import AnyBackend, RewardBackend
from reward_server.errors import BackendNotFound, DuplicateBackend, InvalidBackend
from reward_server.settings import RewardSettings

BackendFactory = Callable[[RewardSettings], AnyBackend]
ENTRY_POINT_GROUP = "reward_server.backends"
BUILTIN_MODULES = ("reward_server.backends.math_sympy", "reward_server.backends.code_sandbox")

_factories: dict[str, BackendFactory] = {}
_origins: dict[str, str] = {}  # name -> where its factory comes from (an entry point), for error messages
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
    """Import the built-ins and the installed entry points; return every registered factory.

    Raises:
        InvalidBackend: an entry point cannot be imported, or names something that is not callable.
    """
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        origin = entry_point_origin(entry)
        try:
            factory = entry.load()
        except Exception as exc:  # anything its import raises: the message must name the plug-in
            raise InvalidBackend(
                f"backend plug-in {entry.name!r} ({origin}) cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(factory):
            raise InvalidBackend(
                f"backend plug-in {entry.name!r} ({origin}) is not a factory: {entry.value} is a "
                f"{type(factory).__name__}, not a callable (RewardSettings) -> backend"
            )
        register_backend(entry.name)(factory)
        _origins[entry.name] = origin
        log.info("loaded backend %r from %s", entry.name, origin)
    return dict(_factories)


def create_backends(settings: RewardSettings) -> dict[str, AnyBackend]:
    """One backend per registered factory, each checked against the `RewardBackend` protocol.

    Raises:
        InvalidBackend: a backend lacks a member of the protocol (see `check_backend`).
    """
    backends: dict[str, AnyBackend] = {}
    for name, factory in load_factories().items():
        backend = factory(settings)
        check_backend(name, backend, _origins.get(name, f"built-in, {_qualified(factory)}"))
        backends[name] = backend
    return backends


def check_backend(name: str, backend: object, origin: str) -> None:
    """Raise InvalidBackend naming every member of `RewardBackend` that `backend` lacks or gets wrong.

    Reading a property (`version`, `reference_model`) runs it; `ready` is not read (it may be False, or
    need resources, before `start`).

    Example:
        check_backend("echo", EchoBackend(settings), "entry point echo = echo_backend:EchoBackend")
        -> InvalidBackend: backend 'echo' (entry point echo = echo_backend:EchoBackend) does not satisfy
           RewardBackend: missing: version, grade; ...
    """
    missing: list[str] = []
    wrong: list[str] = []
    for member, kind in protocol_members().items():
        try:
            inspect.getattr_static(backend, member)
        except AttributeError:
            missing.append(member)
            continue
        if kind == "property" and member == "ready":
            continue
        try:
            value = getattr(backend, member)
        except Exception as exc:  # a property that raises: a member the server cannot use
            wrong.append(f"reading {member} raised {type(exc).__name__}: {exc}")
            continue
        if kind == "async" and not inspect.iscoroutinefunction(value):
            wrong.append(f"{member} is not an async method (`async def {member}`)")
        elif kind == "method" and not callable(value):
            wrong.append(f"{member} is not a method")
        elif member in ("name", "description", "version") and not isinstance(value, str):
            wrong.append(f"{member} is not a str ({type(value).__name__})")
        elif member == "reference_model" and not (isinstance(value, type) and issubclass(value, BaseModel)):
            wrong.append(f"reference_model is not a pydantic model class ({value!r})")
        elif member == "name" and value != name:
            wrong.append(f"its name is {value!r}, but it is registered as {name!r}")
    if missing or wrong:
        problems = ([f"missing: {', '.join(missing)}"] if missing else []) + wrong
        raise InvalidBackend(
            f"backend {name!r} ({origin}) does not satisfy reward_server.backends.base.RewardBackend: "
            f"{'; '.join(problems)}. Subclassing reward_server.backends.base.BaseBackend gives the defaults "
            "of all but name, description, reference_model and grade."
        )


def protocol_members() -> dict[str, str]:
    """Each public member of `RewardBackend` and its kind: `attribute`, `property`, `method` or `async`."""
    members = {name: "attribute" for name in RewardBackend.__annotations__ if not name.startswith("_")}
    for name, value in vars(RewardBackend).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            members[name] = "property"
        elif inspect.iscoroutinefunction(value):
            members[name] = "async"
        elif callable(value):
            members[name] = "method"
    return members


def entry_point_origin(entry: EntryPoint) -> str:
    """How an error names a plug-in: its entry point, and the package that declares it when known."""
    where = f"entry point `{entry.name} = {entry.value}` in group {ENTRY_POINT_GROUP}"
    if entry.dist is not None:
        where += f" of the package {entry.dist.name} {entry.dist.version}"
    return where


def _qualified(factory: BackendFactory) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def get_backend(backends: Mapping[str, AnyBackend], name: str) -> AnyBackend:
    """Return the backend called `name`, or raise BackendNotFound naming the valid ones."""
    try:
        return backends[name]
    except KeyError:
        valid = ", ".join(sorted(backends)) or "none"
        raise BackendNotFound(f"unknown backend {name!r}; valid backends: {valid}") from None
