"""`/v1/grade` bodies shared by the in-process API tests (tests/unit/reward_server/test_api.py) and the
real-server ones (tests/integration/test_server_http.py)."""

from __future__ import annotations

import json


def math_group(gold: str, completions: list[str], group_id: str = "g") -> dict[str, object]:
    return {
        "group_id": group_id,
        "backend": "math",
        "reference": {"answer": gold},
        "completions": completions,
    }


def encode(body: object) -> bytes:
    """The body as a client sends it: json.dumps escapes non-ASCII, so lone surrogates travel as JSON escapes
    (httpx's `json=` would fail to encode them)."""
    return json.dumps(body).encode()


JSON = {"content-type": "application/json"}

# Completions that once crashed or stalled a grader; the gold answer is 5, which only the second gives.
HOSTILE_COMPLETIONS = [
    "",
    "x" * (1024 * 1024) + " so the answer is $\\boxed{5}$",
    "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}",
    "{" * 3000,
    "$\\boxed{\\frac{1}{0}}$",
    "$\\boxed{9^{9^{9^{9}}}}$",
    "$\\boxed{" + "7" * 5000 + "}$",
    "$\\boxed{\\ud83d\\ude00 \u202e\u0000 \ufffe}$",
    "The final answer is \ud800",
    "$\\boxed{(((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))}$",
    "$\\boxed{10^{10^{10}}!}$",
]
