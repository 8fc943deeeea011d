"""Sandbox backends: `process` (the embedded default) and `docker`."""
