"""The example plug-in (examples/backends/exact_match) installed as a user would, then served over HTTP.

`pip install --target` puts the package and its dist-info (with the entry point) in a folder, and that
folder on PYTHONPATH is what the server's `importlib.metadata` sees: no change to this environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPO, ServerProcess

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "backends" / "exact_match"


@pytest.fixture(scope="module")
def plugin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("exact_match")
    source = tmp / "source"  # pip builds in the source folder: a copy keeps the checkout clean
    shutil.copytree(EXAMPLE, source)
    target = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "--target", str(target), str(source)],
        check=True,
        timeout=300,
    )
    assert list(target.glob("reward_exact_match-0.1.0.dist-info/entry_points.txt"))
    path = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    process = ServerProcess({"REWARD_MATH_WORKERS": "1", "PYTHONPATH": path})
    yield process
    process.stop()


def test_the_installed_plugin_is_listed(plugin_server: ServerProcess) -> None:
    response = httpx.get(plugin_server.url + "/v1/backends", timeout=30)
    assert response.status_code == 200, response.text
    backends = {backend["name"]: backend for backend in response.json()["backends"]}
    assert {"math", "code", "exact_match"} <= set(backends)
    exact = backends["exact_match"]
    assert exact["version"].startswith("0.1.0+rules.")
    assert set(exact["reference_schema"]["properties"]) == {"answer", "case_sensitive"}


def test_the_installed_plugin_grades_a_group(plugin_server: ServerProcess) -> None:
    group = {
        "group_id": "capital",
        "backend": "exact_match",
        "reference": {"answer": "Paris"},
        "completions": ["It is Paris.\nAnswer: paris.", "Rome", "", "Answer:  PARIS ", "Answer: Lyon"],
    }
    response = httpx.post(plugin_server.url + "/v1/grade", json={"groups": [group]}, timeout=60)
    assert response.status_code == 200, response.text
    data = response.json()
    (result,) = data["groups"]
    assert [r["status"] for r in result["results"]] == [
        "correct",
        "incorrect",
        "no_answer",
        "correct",
        "incorrect",
    ]
    assert [r["answer_class"] for r in result["results"]] == [0, 1, None, 0, 2]
    assert data["backends"]["exact_match"] == result["backend_version"]


def test_a_reference_the_plugin_refuses_is_a_422_naming_the_field(plugin_server: ServerProcess) -> None:
    group = {"group_id": "g", "backend": "exact_match", "reference": {"gold": "Paris"}, "completions": ["x"]}
    response = httpx.post(plugin_server.url + "/v1/grade", json={"groups": [group]}, timeout=60)
    assert response.status_code == 422, response.text
    assert "reference" in response.text and "answer" in response.text
