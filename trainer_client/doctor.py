"""`trainer-client doctor`: is this environment ready to train with verl, TRL or OpenRLHF and our server?

Checks, each one cheap unless said otherwise:

- each trainer installed, and its version within the range our adapters support (`importlib.metadata`: no
  framework is imported);
- verl: our estimators registered. verl imports the entry points of the group `verl.plugins` on `import
  verl`, ours being `inference_aware` (`trainer_client.integrations.verl_plugin`), and hides a plugin that
  fails at DEBUG. So `import verl` runs in a subprocess (seconds; bounded by a timeout) and its advantage
  estimator registry is searched for the `ia_` names;
- optionally, a reward server's `/healthz`.

Run: `trainer-client doctor` (all), `trainer-client doctor verl --url http://host:8000 --strict`.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

VERL_PLUGIN_GROUP, VERL_PLUGIN_NAME = "verl.plugins", "inference_aware"
# Run by a fresh interpreter: prints the ia_* names verl registered on import, or why it could not import.
VERL_PROBE = """
import json
try:
    import verl  # imports every entry point of the group verl.plugins
    from verl.trainer.ppo import core_algos
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
else:
    print(json.dumps({"names": sorted(n for n in core_algos.ADV_ESTIMATOR_REGISTRY if n.startswith("ia_"))}))
"""


@dataclass(frozen=True)
class Framework:
    """A trainer our adapters support, and the versions they were tested with."""

    name: str
    distribution: str
    supported: str  # a PEP 440 specifier
    install: str


FRAMEWORKS = {
    "verl": Framework("verl", "verl", ">=0.9,<0.10", "pip install 'inference-aware-verifier[verl]'"),
    "trl": Framework("TRL", "trl", ">=1.16,<1.17", "pip install 'inference-aware-verifier[trl]'"),
    "openrlhf": Framework(
        "OpenRLHF",
        "openrlhf",
        ">=0.10.2,<0.12",
        "install it as OpenRLHF's docs say; CPU only (no flash-attn, deepspeed): "
        "pip install --no-deps 'openrlhf>=0.10.2,<0.12' aiohttp pylatexenc",
    ),
}


@dataclass(frozen=True)
class Check:
    """One line of the report. `ok` is None when the check did not apply (what it needs is missing)."""

    subject: str
    ok: bool | None
    result: str
    detail: str = ""


def installed_version(distribution: str) -> str | None:
    """The installed version of `distribution`, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_framework(framework: Framework) -> Check:
    """Installed, and within the supported range."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion

    version = installed_version(framework.distribution)
    if version is None:
        return Check(framework.name, False, "not installed", framework.install)
    try:
        supported = SpecifierSet(framework.supported).contains(version, prereleases=True)
    except InvalidVersion:
        supported = False
    if not supported:
        return Check(framework.name, False, f"{version}: unsupported", f"supported: {framework.supported}")
    return Check(framework.name, True, version, f"supported: {framework.supported}")


def verl_plugin_declared() -> bool:
    """Whether an installed distribution declares our verl plugin (`verl.plugins` / `inference_aware`)."""
    return bool(importlib.metadata.entry_points(group=VERL_PLUGIN_GROUP, name=VERL_PLUGIN_NAME))


def run_python(code: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """`code` run by this environment's interpreter; raises subprocess.TimeoutExpired."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)


def check_verl_estimators(timeout_s: float) -> Check:
    """Whether `import verl` registers our `ia_*` advantage estimators (a subprocess, within `timeout_s`)."""
    subject = "verl estimators"
    if not verl_plugin_declared():
        return Check(
            subject,
            False,
            "plugin not found",
            f"no entry point {VERL_PLUGIN_NAME!r} in the group {VERL_PLUGIN_GROUP!r}: this install of "
            "inference-aware-verifier has no verl plugin (upgrade it, or reinstall it in this environment)",
        )
    try:
        probe = run_python(VERL_PROBE, timeout_s)
    except subprocess.TimeoutExpired:
        return Check(subject, False, "timed out", f"`import verl` took more than {timeout_s:g} s (--timeout)")
    lines = probe.stdout.strip().splitlines()
    try:
        found = json.loads(lines[-1]) if lines else {}
    except ValueError:
        found = {}
    stderr_tail = " | ".join(probe.stderr.strip().splitlines()[-3:])
    if "names" not in found:
        why = found.get("error") or stderr_tail or f"exit status {probe.returncode}"
        return Check(subject, False, "import verl failed", why)
    if not found["names"]:
        return Check(
            subject,
            False,
            "none registered",
            "the plugin is declared but registered no ia_* estimator"
            + (f": {stderr_tail}" if stderr_tail else ""),
        )
    names = found["names"]
    return Check(subject, True, f"{len(names)} registered", ", ".join(names))


def check_server(url: str, timeout_s: float, transport: httpx.BaseTransport | None = None) -> Check:
    """Whether the reward server at `url` answers `GET /healthz` with 200."""
    subject = "reward server"
    target = url.rstrip("/") + "/healthz"
    try:
        with httpx.Client(transport=transport, timeout=timeout_s) as client:
            response = client.get(target)
    except httpx.HTTPError as exc:
        return Check(subject, False, "unreachable", f"{target}: {type(exc).__name__}: {exc}")
    if response.status_code != 200:
        return Check(subject, False, f"HTTP {response.status_code}", target)
    return Check(subject, True, "healthy", target)


def run_checks(frameworks: Sequence[str], url: str | None, timeout_s: float) -> list[Check]:
    """The report for `frameworks` (keys of FRAMEWORKS), and the server at `url` if given."""
    checks = []
    for key in frameworks:
        framework = FRAMEWORKS[key]
        checks.append(check_framework(framework))
        if key == "verl":
            if checks[-1].result == "not installed":
                checks.append(Check("verl estimators", None, "skipped", "verl is not installed"))
            else:
                checks.append(check_verl_estimators(timeout_s))
    if url is not None:
        checks.append(check_server(url, timeout_s))
    return checks
