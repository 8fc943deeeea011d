"""Sandboxed execution of untrusted code (arrives with the code backend; see the issue tracker)."""
