"""A backend's version derived from its rules: the source of the modules that decide its verdicts.

Verdicts are cached (in Redis, for `REWARD_CACHE_TTL_S`: a week) under a key that holds the backend's
version, so the version must change whenever a verdict may. A hand-kept number is forgotten after a rule
change, and the old verdicts are then served for a week; a hash of the rules' source cannot be forgotten.

    rules_version("0.1.0", ["reward_server.math_grading", "reward_server.backends.math_sympy"],
                  {"timeout_status": "incorrect"})
    -> "0.1.0+rules.3f9a2c1b"

The hash covers the bytes of every module named (a package: each of its modules, found as the import system
finds them, so it also works installed from a wheel), in a stable order, then the conventions: settings that
change verdicts. It does not depend on where the modules are installed: a file counts by its module name
relative to the one named, so a checkout and a wheel of the same source have the same version. The source
is read once per process (when the backends are created at start-up), never per request.

A module whose source cannot be read counts by its name alone, and a warning says so: a server must not
fail to start over its cache keys, and its version still changes with every rule it can read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import pkgutil
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.machinery import ModuleSpec
from types import ModuleType

log = logging.getLogger(__name__)
HASH_HEX_CHARS = 8  # 32 bits: enough to tell the rule sets of one backend apart, short enough to read


def rules_version(
    human: str, modules: Iterable[ModuleType | str], conventions: Mapping[str, object] | None = None
) -> str:
    """The version `human+rules.<hash>` of a backend whose verdicts `modules` and `conventions` decide.

    Args:
        human: the hand-kept version (bump it for changes the source does not show, e.g. a dependency's).
        modules: modules or packages (objects or dotted names); the order is part of the hash.
        conventions: settings that change verdicts and are not already in the cache key (JSON-able).

    Returns:
        e.g. "0.1.0+rules.3f9a2c1b".
    """
    names = tuple(module.__name__ if isinstance(module, ModuleType) else module for module in modules)
    digest = hashlib.sha256(source_digest(names).encode())
    digest.update(json.dumps(dict(conventions or {}), sort_keys=True, default=str).encode())
    return f"{human}+rules.{digest.hexdigest()[:HASH_HEX_CHARS]}"


@cache
def source_digest(names: tuple[str, ...]) -> str:
    """SHA-256 (hex) of the source of the modules `names` (packages with all their modules), in order."""
    digest = hashlib.sha256()
    for position, name in enumerate(names):
        for relative, data in _sources(name):
            # Length-prefixed, so that no two different sets of files hash alike.
            label = f"{position}:{relative}".encode()
            for part in (label, data):
                digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _sources(name: str) -> list[tuple[str, bytes]]:
    """(name relative to `name`, source bytes) of the module `name`, or of each module of the package."""
    spec = _find(name)
    if spec is None:
        return [("", b"<not found>")]
    namespace_package = spec.submodule_search_locations is not None and not spec.has_location
    found = [] if namespace_package else [("", _read(name, spec))]  # a namespace package has no file
    for module in pkgutil.iter_modules(spec.submodule_search_locations or []):
        for relative, data in _sources(f"{name}.{module.name}"):
            found.append((f"{module.name}.{relative}" if relative else module.name, data))
    return sorted(found)


def _find(name: str) -> ModuleSpec | None:
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:  # finding a submodule imports its package, which may raise anything
        log.warning("rules version: cannot find module %s (%s); it counts by its name alone", name, exc)
        return None
    if spec is None:
        log.warning("rules version: no module %s; it counts by its name alone", name)
    return spec


def _read(name: str, spec: ModuleSpec) -> bytes:
    # The loader reads what the import system would: a file, or a member of a zip archive.
    get_data = getattr(spec.loader, "get_data", None)
    if spec.origin is not None and get_data is not None:
        try:
            return bytes(get_data(spec.origin))
        except OSError as exc:
            reason = str(exc)
    else:
        reason = f"its loader ({type(spec.loader).__name__}) cannot read {spec.origin}"
    log.warning("rules version: cannot read the source of %s (%s); it counts by its name alone", name, reason)
    return b"<unreadable>"
