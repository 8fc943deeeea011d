"""`trainer-client doctor` with the installed packages, verl's subprocess and the server faked."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from trainer_client import doctor
from trainer_client.cli import app

SUPPORTED = {"verl": "0.9.1", "trl": "1.16.0", "openrlhf": "0.11.2"}
IA_NAMES = ["ia_mean_loo", "ia_passk_loo"]


def fake_versions(monkeypatch: pytest.MonkeyPatch, versions: dict[str, str]) -> None:
    real = importlib.metadata.version

    def version(distribution: str) -> str:
        if distribution in SUPPORTED:
            if distribution not in versions:
                raise importlib.metadata.PackageNotFoundError(distribution)
            return versions[distribution]
        return real(distribution)

    monkeypatch.setattr(importlib.metadata, "version", version)


def fake_plugin(monkeypatch: pytest.MonkeyPatch, declared: bool) -> None:
    real = importlib.metadata.entry_points

    def entry_points(**selection: Any) -> Any:
        if selection.get("group") == doctor.VERL_PLUGIN_GROUP:
            return [object()] if declared else []
        return real(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def fake_verl_import(
    monkeypatch: pytest.MonkeyPatch, stdout: str = "", stderr: str = "", timeout: bool = False
) -> list[str]:
    """What `import verl` in the subprocess prints; returns the list of codes it was asked to run."""
    calls: list[str] = []

    def run(code: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        calls.append(code)
        if timeout:
            raise subprocess.TimeoutExpired(["python"], timeout_s)
        return subprocess.CompletedProcess(["python"], 0, stdout, stderr)

    monkeypatch.setattr(doctor, "run_python", run)
    return calls


def registered(names: list[str]) -> str:
    return "verl: some log line\n" + json.dumps({"names": names}) + "\n"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["doctor", *args])


def row(output: str, subject: str) -> str:
    """The table row of `subject` (its first cell)."""
    return next(line for line in output.splitlines() if line.strip("│┃ ").startswith(subject + " "))


def test_all_installed_and_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_versions(monkeypatch, SUPPORTED)
    fake_plugin(monkeypatch, declared=True)
    calls = fake_verl_import(monkeypatch, stdout=registered(IA_NAMES))
    result = invoke("--strict")
    assert result.exit_code == 0, result.output
    for subject, version in (("verl", "0.9.1"), ("TRL", "1.16.0"), ("OpenRLHF", "0.11.2")):
        assert "ok" in row(result.output, subject) and version in row(result.output, subject)
    assert "2 registered" in row(result.output, "verl estimators")
    assert "ia_mean_loo, ia_passk_loo" in row(result.output, "verl estimators")
    assert len(calls) == 1 and "import verl" in calls[0]


def test_nothing_installed_fails_only_when_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_versions(monkeypatch, {})
    calls = fake_verl_import(monkeypatch)
    result = invoke()
    assert result.exit_code == 0, result.output
    for subject in ("verl", "TRL", "OpenRLHF"):
        assert "FAIL" in row(result.output, subject) and "not installed" in row(result.output, subject)
    assert "inference-aware-verifier[verl]" in row(result.output, "verl")  # rich markup kept as text
    assert "skipped" in row(result.output, "verl estimators")
    assert calls == []  # verl is not imported when it is not there
    strict = invoke("--strict")
    assert strict.exit_code == 1
    assert "3 check(s) failed: verl, TRL, OpenRLHF" in strict.output


@pytest.mark.parametrize(
    ("name", "version", "supported"),
    [
        ("verl", "0.9.0", True),
        ("verl", "0.10.0", False),
        ("verl", "0.8.5", False),
        ("trl", "1.16.3", True),
        ("trl", "1.17.0", False),
        ("openrlhf", "0.10.1", False),
        ("openrlhf", "0.10.2", True),
        ("openrlhf", "0.11.9", True),
        ("openrlhf", "0.12.0", False),
        ("openrlhf", "not-a-version", False),
    ],
)
def test_supported_ranges(monkeypatch: pytest.MonkeyPatch, name: str, version: str, supported: bool) -> None:
    fake_versions(monkeypatch, {name: version})
    check = doctor.check_framework(doctor.FRAMEWORKS[name])
    assert check.ok is supported
    assert check.result == (version if supported else f"{version}: unsupported")


def test_only_the_named_frameworks_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_versions(monkeypatch, {"trl": "1.16.0"})
    result = invoke("trl", "--strict")
    assert result.exit_code == 0, result.output
    assert "TRL" in result.output and "OpenRLHF" not in result.output and "verl" not in result.output


def test_an_unknown_framework_is_refused() -> None:
    result = invoke("ray")
    assert result.exit_code == 2
    assert "unknown: ray" in result.output


def test_plugin_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_versions(monkeypatch, SUPPORTED)
    fake_plugin(monkeypatch, declared=False)
    calls = fake_verl_import(monkeypatch)
    result = invoke("verl", "--strict")
    assert result.exit_code == 1
    assert "plugin not found" in row(result.output, "verl estimators")
    assert calls == []


@pytest.mark.parametrize(
    ("probe", "result", "detail"),
    [
        (dict(stdout=registered([])), "none registered", "registered no ia_* estimator"),
        (
            dict(stdout=registered([]), stderr="WARNING inference-aware verl plugin: boom\n"),
            "none registered",
            "plugin: boom",
        ),
        (
            dict(stdout=json.dumps({"error": "ImportError: no cachetools"})),
            "import verl failed",
            "no cachetools",
        ),
        (dict(stderr="Segmentation fault\n"), "import verl failed", "Segmentation fault"),
        (dict(timeout=True), "timed out", "more than 60 s"),
    ],
)
def test_verl_estimators_missing(
    monkeypatch: pytest.MonkeyPatch, probe: dict[str, Any], result: str, detail: str
) -> None:
    fake_versions(monkeypatch, SUPPORTED)
    fake_plugin(monkeypatch, declared=True)
    fake_verl_import(monkeypatch, **probe)
    check = doctor.check_verl_estimators(timeout_s=60)
    assert (check.ok, check.result) == (False, result)
    assert detail in check.detail


def test_the_verl_probe_runs_in_a_fresh_interpreter() -> None:
    """The probe itself, without verl here: it reports the import error as JSON."""
    probe = doctor.run_python(doctor.VERL_PROBE.replace("import verl ", "import no_such_verl_module "), 60)
    assert "ModuleNotFoundError" in json.loads(probe.stdout)["error"]


def answering(status: int) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/healthz"
        return httpx.Response(status, json={"status": "ok"})

    return httpx.MockTransport(handler)


def refusing() -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("transport", "ok", "result"),
    [
        (answering(200), True, "healthy"),
        (answering(503), False, "HTTP 503"),
        (refusing(), False, "unreachable"),
    ],
)
def test_server_check(transport: httpx.MockTransport, ok: bool, result: str) -> None:
    check = doctor.check_server("http://reward:8000/", 5, transport=transport)
    assert (check.ok, check.result) == (ok, result)
    assert "http://reward:8000/healthz" in check.detail


def test_url_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_versions(monkeypatch, {"trl": "1.16.0"})
    checked: list[str] = []
    real: Callable[..., doctor.Check] = doctor.check_server

    def check_server(url: str, timeout_s: float) -> doctor.Check:
        checked.append(url)
        return real(url, timeout_s, transport=refusing())

    monkeypatch.setattr(doctor, "check_server", check_server)
    result = invoke("trl", "--url", "http://reward:8000", "--strict")
    assert checked == ["http://reward:8000"]
    assert result.exit_code == 1
    assert "unreachable" in row(result.output, "reward server")
