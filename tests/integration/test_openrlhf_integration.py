"""OpenRLHF's own reward client against a live `reward-server serve`: `/compat/openrlhf/v1/reward`.

OpenRLHF 0.11.2 is installed with `--no-deps` (its own dependencies pin flash-attn and deepspeed), plus
aiohttp and pylatexenc, which `openrlhf.utils.agent` needs (`.ci/run`, the integrations venv). What runs
here is OpenRLHF's code, unchanged:

- `SingleTurnAgentExecutor.execute` (openrlhf/utils/agent.py), with a fake vLLM engine and this project's
  tiny tokenizer: it builds the query (prompt and response tokens decoded, special tokens kept), posts it
  with `_fetch_rewards_via_http` (aiohttp) and reads `rewards`, `scores` and `extra_logs`;
- `SamplesGenerator._process_response_into_experience` (openrlhf/trainer/ppo_utils/samples_generator.py),
  compiled from its source alone: that module imports vLLM, which is not installed, and only the function
  is needed. Its Experiences are concatenated with OpenRLHF's `Experience.concat_experiences`.
"""

from __future__ import annotations

import ast
import asyncio
import math
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.conftest import ServerProcess

pytestmark = [pytest.mark.integrations, pytest.mark.slow]

KEY = "openrlhf-key-" + "5" * 24
PROMPT = "<bos>Question: what is 2+2?\nAnswer:"
FAILING_LABEL = '{"answer": "4"}'  # a backend other than math and code takes its reference as the label
N_SAMPLES = 4


@pytest.fixture(scope="module")
def openrlhf() -> ModuleType:
    pytest.importorskip("openrlhf")  # only the integrations venv has it
    with warnings.catch_warnings():  # its imports (transformers, torch) may warn; not what is tested
        warnings.simplefilter("ignore")
        import openrlhf
        import openrlhf.trainer.ppo_utils.experience  # noqa: F401
        import openrlhf.utils.agent  # noqa: F401
    return openrlhf


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = ServerProcess({"REWARD_MATH_WORKERS": "2", "REWARD_API_KEYS": KEY}, api_key=KEY)
    yield process
    process.stop()


FAILING_BACKEND = """
from pydantic import BaseModel

from reward_server.backends.base import Verdict
from reward_server.schemas import Status


class Reference(BaseModel):
    answer: str


class FailingBackend:
    name = "failing"
    version = "1"
    description = "every completion fails to grade (a test double)"
    reference_model = Reference
    ready = True

    async def start(self): ...

    async def close(self): ...

    def parse_reference(self, raw):
        return Reference.model_validate(raw)

    async def grade(self, reference, completions):
        return [Verdict(Status.ERROR, detail="sandbox down") for _ in completions]

    async def answer_classes(self, reference, verdicts, memo):
        return [None] * len(verdicts)


def make(settings):
    return FailingBackend()
"""


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a backend `failing` whose every verdict is `error`, installed as third-party backends
    are: an entry point of the group `reward_server.backends` (a dist-info folder on the server's path)."""
    plugin = tmp_path_factory.mktemp("plugin")
    (plugin / "failing_backend.py").write_text(FAILING_BACKEND)
    info = plugin / "failing_backend-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: failing-backend\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[reward_server.backends]\nfailing = failing_backend:make\n")
    path = os.pathsep.join(filter(None, [str(plugin), os.environ.get("PYTHONPATH")]))
    process = ServerProcess({"REWARD_MATH_WORKERS": "1", "PYTHONPATH": path})
    yield process
    process.stop()


class FakeEngine:
    """vLLM's `generate` as `execute` calls it: the scripted responses, in turn, each ending with <eos>."""

    def __init__(self, tokenizer: Any, responses: list[str]) -> None:
        self.tokenizer = tokenizer
        self.responses = list(responses)

    async def generate(self, prompt_token_ids: list[int], params: Any, multi_modal_data: Any = None) -> Any:
        ids = self.tokenizer(text=self.responses.pop(0), add_special_tokens=False)["input_ids"]
        output = SimpleNamespace(
            token_ids=[*ids, self.tokenizer.eos_token_id], finish_reason="stop", logprobs=None
        )
        return SimpleNamespace(outputs=[output])


def rollout(
    openrlhf: ModuleType, url: str, prompt: str, label: str, responses: list[str]
) -> list[dict[str, Any]]:
    """What OpenRLHF's rollout actor does for one prompt: n concurrent `execute` calls, one reward request
    each (`RolloutRayActor.generate_responses`)."""
    from trainer_client.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    executor = openrlhf.utils.agent.SingleTurnAgentExecutor(url)
    engine = FakeEngine(tokenizer, responses)
    params = SimpleNamespace(max_tokens=64, logprobs=None)

    async def run() -> list[dict[str, Any]]:
        calls = [executor.execute(prompt, label, params, 512, tokenizer, engine) for _ in responses]
        return list(await asyncio.gather(*calls))

    return asyncio.run(run())


def to_experience(openrlhf: ModuleType) -> Callable[[dict[str, Any]], Any]:
    """OpenRLHF's `_process_response_into_experience`, compiled from its source without its module."""
    import torch

    path = Path(openrlhf.__file__).parent / "trainer" / "ppo_utils" / "samples_generator.py"
    tree = ast.parse(path.read_text())
    generator = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SamplesGenerator")
    function = next(
        n
        for n in generator.body
        if isinstance(n, ast.FunctionDef) and n.name == "_process_response_into_experience"
    )
    namespace: dict[str, Any] = {
        "torch": torch,
        "Experience": openrlhf.trainer.ppo_utils.experience.Experience,
    }
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(path), "exec"), namespace)
    process = namespace["_process_response_into_experience"]
    return lambda response: process(None, response, max_len=512)


def url_of(server: ServerProcess, query: str, key: str | None = None) -> str:
    host = server.url.removeprefix("http://")
    credentials = f"openrlhf:{key}@" if key else ""
    return f"http://{credentials}{host}/compat/openrlhf/v1/reward?{query}"


def test_openrlhf_client_gets_rewards_scores_and_logs(openrlhf: ModuleType, server: ServerProcess) -> None:
    responses = [" \\boxed{4}", " It is 5, so \\boxed{5}.", " I do not know.", " 2+2 = \\boxed{4}"]
    outputs = rollout(openrlhf, url_of(server, "backend=math", KEY), PROMPT, "4", responses)
    assert [o["reward"] for o in outputs] == [[1.0], [-1.0], [-1.0], [1.0]]
    assert [o["scores"] for o in outputs] == [[1.0], [0.0], [0.0], [1.0]]
    assert [o["extra_logs"] for o in outputs][2] == {
        "ia_accuracy": 0.0,
        "ia_error_rate": 0.0,
        "ia_no_answer_rate": 1.0,
    }

    # Into OpenRLHF's Experiences, and grouped as its advantage step does (n consecutive samples).
    experience_of = to_experience(openrlhf)
    experiences = [experience_of(o) for o in outputs]
    batch = openrlhf.trainer.ppo_utils.experience.Experience.concat_experiences(experiences, 0)
    assert batch.rewards.reshape(-1, N_SAMPLES).tolist() == [[1.0, -1.0, -1.0, 1.0]]
    assert [e.scores[0].item() for e in experiences] == [1.0, 0.0, 0.0, 1.0]  # dynamic filtering's read
    assert batch.info["ia_accuracy"].flatten().tolist() == [1.0, 0.0, 0.0, 1.0]
    assert batch.info["ia_no_answer_rate"].flatten().tolist() == [0.0, 0.0, 1.0, 0.0]


def test_the_prompt_is_not_graded(openrlhf: ModuleType, server: ServerProcess) -> None:
    few_shot = "<bos>Q: What is 1+3?\nA: \\boxed{4}\n\nQ: What is 2+2?\nA:"
    (output,) = rollout(openrlhf, url_of(server, "backend=math", KEY), few_shot, "4", [" I am not sure."])
    assert output["reward"] == [-1.0]
    assert output["extra_logs"]["ia_no_answer_rate"] == 1.0


def test_without_the_key_there_is_no_reward(openrlhf: ModuleType, server: ServerProcess) -> None:
    # OpenRLHF retries 5 times, logs at INFO, and leaves the reward None: the run then stops.
    (output,) = rollout(openrlhf, url_of(server, "backend=math"), PROMPT, "4", [" \\boxed{4}"])
    assert output["reward"] is None


def test_code_labels_from_openrlhf(openrlhf: ModuleType, server: ServerProcess) -> None:
    label = '{"inputs": ["1 2\\n"], "outputs": ["3\\n"]}'
    responses = ["```python\nprint(sum(map(int, input().split())))\n```", "```python\nprint(0)\n```"]
    outputs = rollout(
        openrlhf, url_of(server, "backend=code", KEY), "<bos>Add two numbers.\n", label, responses
    )
    assert [o["reward"] for o in outputs] == [[1.0], [-1.0]]


def test_on_error_nan_reaches_openrlhf_as_nan(openrlhf: ModuleType, failing_server: ServerProcess) -> None:
    url = url_of(failing_server, "backend=failing&on_error=nan")
    (output,) = rollout(openrlhf, url, PROMPT, FAILING_LABEL, [" \\boxed{4}"])
    assert math.isnan(output["reward"][0]) and math.isnan(output["scores"][0])
    assert output["extra_logs"]["ia_error_rate"] == 1.0
    experience = to_experience(openrlhf)(output)
    assert experience.rewards.isnan().all()


def test_on_error_incorrect_and_fail(openrlhf: ModuleType, failing_server: ServerProcess) -> None:
    url = url_of(failing_server, "backend=failing&on_error=incorrect")
    (output,) = rollout(openrlhf, url, PROMPT, FAILING_LABEL, [" \\boxed{4}"])
    assert output["reward"] == [-1.0] and output["scores"] == [0.0]
    # fail: 503 on each of OpenRLHF's 5 tries (1 s apart); it gives up with no reward, and the run stops.
    url = url_of(failing_server, "backend=failing")
    (output,) = rollout(openrlhf, url, PROMPT, FAILING_LABEL, [" \\boxed{4}"])
    assert output["reward"] is None
