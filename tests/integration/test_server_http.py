"""The reward server as a user meets it: a real `reward-server serve` process over HTTP, and the CLI.

Only what needs the socket or a process is here: large bodies over the wire, requests answered while another
grinds, `grade-file`. What the request/response logic answers (status codes, error bodies, verdicts) is
tested in-process in tests/unit/reward_server/test_api.py.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, ServerProcess
from tests.grade_bodies import HOSTILE_COMPLETIONS, JSON, encode, math_group

pytestmark = pytest.mark.slow


def grade(server: ServerProcess, body: object, timeout_s: float = 60) -> httpx.Response:
    return httpx.post(server.url + "/v1/grade", content=encode(body), headers=JSON, timeout=timeout_s)


def test_other_requests_are_answered_while_a_heavy_group_grinds(server: ServerProcess) -> None:
    heavy = {
        "groups": [math_group("5", [c + " " * i for i, c in enumerate(HOSTILE_COMPLETIONS * 3)], "heavy")]
    }
    light = {"groups": [math_group("2", ["$\\boxed{2}$"], "light")]}
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        slow = executor.submit(grade, server, heavy, 180)
        time.sleep(0.3)
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            assert grade(server, light).json()["groups"][0]["results"][0]["status"] == "correct"
            latencies.append(time.monotonic() - started)
        assert slow.result().status_code == 200
    assert max(latencies) < 3.0, latencies


def test_large_bodies_are_accepted_and_oversized_ones_refused(server: ServerProcess) -> None:
    big = {"groups": [math_group("1", ["$\\boxed{1}$ " + "y" * (1024 * 1024)] * 20)]}
    assert grade(server, big, timeout_s=120).status_code == 200
    too_big = b'{"groups": [], "pad": "' + b"z" * (65 * 1024 * 1024) + b'"}'
    response = httpx.post(server.url + "/v1/grade", content=too_big, timeout=120)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_grade_file_uses_the_same_rules(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "out.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "reward_server",
            "grade-file",
            str(REPO / "examples/math_groups.jsonl"),
            str(out),
        ],
        check=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "REWARD_MATH_WORKERS": "1"},
        capture_output=True,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["group_id"] for r in rows] == ["g1", "g2"]
    assert [[x["status"] for x in r["results"]] for r in rows] == [
        ["correct", "incorrect"],
        ["correct", "incorrect"],
    ]
