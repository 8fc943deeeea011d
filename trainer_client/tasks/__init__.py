"""Synthetic tasks for experiments: seeded generators that write the JSONL `trainer-client train` reads.

- `trainer_client.tasks.offset`: one-digit answers with a hidden offset, where the most likely answer
  maximises pass@1 and spreading over answers maximises pass@k (`trainer-client reproduce tradeoff`).
"""
