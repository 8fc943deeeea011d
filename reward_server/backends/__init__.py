"""Grading backends: a Protocol (`base`), a registry (`registry`) and the built-ins."""
