"""The trainer machine needs no server parts: trainer_client imports only the wire schemas (torch itself
brings sympy, so sympy is not checked)."""

from __future__ import annotations

import subprocess
import sys


def test_trainer_imports_only_the_wire_schemas_of_the_server() -> None:
    code = (
        "import sys\n"
        "import trainer_client.train, trainer_client.evaluate, trainer_client.cli, trainer_client.bandit\n"
        "server = sorted(m for m in sys.modules if m.startswith('reward_server'))\n"
        "heavy = sorted({'fastapi', 'redis', 'docker', 'sandbox', 'uvicorn'} & set(sys.modules))\n"
        "print(server, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['reward_server', 'reward_server.schemas'] []"
