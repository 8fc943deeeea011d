"""Training client for inference-aware RL: optimize pass@k and majority voting, not just mean reward.

- `trainer_client.estimators`: the paper's k-sample advantage estimators (pure torch, no I/O).
- `trainer_client.client`: the async HTTP client of the reward server (retries, in-flight cap).
- `trainer_client.train`, `.evaluate`, `.bandit`: the commands `trainer-client train | eval | bandit`.

Only the wire schemas of `reward_server` are imported, so the trainer machine needs neither sympy nor Docker.
"""
