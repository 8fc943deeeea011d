"""Training client for inference-aware RL (estimators, reward client, loop; see the issue tracker)."""
