"""Code executors: what runs a group's programs against a problem's tests and returns their verdicts.

- `base.ProgramExecutor`: the interface the `code` backend (`reward_server.backends.code_sandbox`) grades
  through;
- `local.LocalExecutor`: a sandbox in this process; the embedded default, and what each queue worker
  (`reward_server.queue.worker`) runs;
- `reward_server.queue.client.QueueExecutor`: the same interface over the Redis job queue.

Layers: this package depends on the verdict type (`reward_server.verdict`), `code_grading` and `sandbox`,
never on `backends` or `queue`; `queue` depends on it, and `backends` on both
(`tests/unit/reward_server/test_layers.py`).
"""
