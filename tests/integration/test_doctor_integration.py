"""`trainer-client doctor` in the integrations venv (verl, TRL and OpenRLHF installed; `.ci/run`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, ServerProcess
from trainer_client import doctor

pytestmark = [pytest.mark.integrations, pytest.mark.slow]


@pytest.fixture(autouse=True)
def frameworks_installed() -> None:
    missing = [key for key in doctor.FRAMEWORKS if doctor.installed_version(key) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (the integrations venv has them)")


def test_doctor_reports_all_three_installed_and_our_verl_estimators() -> None:
    checks = {check.subject: check for check in doctor.run_checks(list(doctor.FRAMEWORKS), None, 300)}
    for subject in ("verl", "TRL", "OpenRLHF"):
        assert checks[subject].ok, checks[subject]
    estimators = checks["verl estimators"]
    if doctor.verl_plugin_declared():
        assert estimators.ok, estimators
        assert "ia_passk_loo" in estimators.detail.split(", ")
    else:  # an install from before the verl plugin
        assert estimators.result == "plugin not found"


def test_doctor_command_with_a_live_server() -> None:
    server = ServerProcess({"REWARD_MATH_WORKERS": "1"})
    try:
        command = "from trainer_client.cli import app; app()"
        result = subprocess.run(
            [sys.executable, "-c", command, "doctor", "trl", "openrlhf", "--url", server.url, "--strict"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
            env={**os.environ, "COLUMNS": "300"},
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    for distribution in ("trl", "openrlhf"):
        assert f" {doctor.installed_version(distribution)} " in result.stdout
    assert "healthy" in result.stdout
