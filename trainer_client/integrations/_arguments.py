"""Checks of what a trainer hands the adapters (`trl`, `verl_reward`).

A wrong argument raises a TypeError or ValueError that names it, before any request: never an IndexError or
a TypeError from deep inside (`len(None)`), nor a pydantic error about a `GradeGroup` the caller never built,
which the verl coalescer would also have given every other sample of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def per_sample(name: str, value: Any, each: str = "sample") -> list[Any]:
    """`value`, one entry per sample (or per `each`: a list, a tuple, a numpy array), as a list.

    Raises:
        TypeError: `value` is None, a string, a mapping or something without a length (a generator).

    Example:
        >>> per_sample("completions", ("a", "b"))
        ['a', 'b']
    """
    if isinstance(value, str | bytes | Mapping) or not (
        isinstance(value, Sequence) or (hasattr(value, "__len__") and hasattr(value, "__iter__"))
    ):
        raise TypeError(f"{name} must be a list with one entry per {each}, not {type(value).__name__}")
    return list(value)


def same_length(each: str = "sample", **columns: Sequence[Any]) -> None:
    """Raise ValueError, naming each argument and its length, unless they all have one length (one entry
    per sample, or per `each`).

    Example:
        >>> same_length(prompts=["p"], completions=["a", "b"])
        Traceback (most recent call last):
        ...
        ValueError: one entry per sample in each of prompts, completions; got 1 prompts, 2 completions
    """
    if len({len(column) for column in columns.values()}) > 1:
        counts = ", ".join(f"{len(column)} {name}" for name, column in columns.items())
        raise ValueError(f"one entry per {each} in each of {', '.join(columns)}; got {counts}")


def text(name: str, value: Any) -> str:
    """`value` if it is a string; TypeError naming `name` otherwise (a None completion, say)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__} {value!r:.100}")
    return value


def gold_number(name: str, value: int | float) -> str:
    """A numeric gold answer as the text sent; ValueError naming `name` for NaN or an infinity, which would
    be graded against the gold answer "nan" or "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value}")
    return str(value)
