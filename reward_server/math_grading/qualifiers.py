"""Words around a stated value that take back its claim to be the answer (docs/math-conventions.md §1, §3).

A value is not stated as the answer when the words next to it make it something else:

- a bound before it: "the answer is at least $7$", "at most \\boxed{7}" (an inequality, not a value);
- a condition after it: "the answer is $7$ if $n$ is even", "\\boxed{8} otherwise";
- a doubt after it: "\\boxed{7}, but it might be $8$", "\\boxed{7}, though it could also be 8";
- a second answer later on: "\\boxed{7}. (If order matters, the answer would be $14$.)", "\\boxed{7}.
  Alternatively, one might argue for $8$.";
- a negation before it or a retraction after it: "it is not \\boxed{5}", "\\boxed{5}. Hmm, no, that's wrong."

An alternative after a box ("\\boxed{7} or 8", "\\boxed{7} (or maybe 8)") is not a qualifier: the extractor
joins it to the box as a list, so that a hedge fails and an equivalent restatement ("\\boxed{\\frac12} or
$0.5$") still passes.

"when" is not a condition here: "the minimum is $-4$ when $x = 1$" states the minimum and where it is
attained.
"""

from __future__ import annotations

import re

_BOUND = (
    r"(?:at\s+(?:least|most)|(?:no\s+)?(?:more|less|greater|fewer|smaller|larger|bigger)\s+than|up\s+to"
    r"|between|bounded\s+by|exceeds?)\b"
)
_BOUND_BEFORE = re.compile(r"\b(?:" + _BOUND + r"|not)[\s$*]*(?:(?:\\\(|\\\[)\s*)?$", re.IGNORECASE)
_BOUND_WORDS = ("least", "most", "than", "up", "between", "bounded", "exceed", "not")
_BOUND_OPENING = re.compile(r"[\s*]*" + _BOUND, re.IGNORECASE)
_SECOND_ANSWER_WINDOW = 400
_CLOSING = re.compile(r"(?:\s|\$|\\\)|\\\]|\*)*")
_CONDITION_AFTER = re.compile(
    r",?\s*(?:(?:only\s+)?if\b(?!\s+(?:I|I'm|we|my|our)\b)|unless\b|otherwise\b|only\s+when\b|provided\b"
    r"|(?:but|though|although)\b[^.\n]{0,40}?\b(?:might|could|may)\s+(?:also\s+)?be\b"
    r"(?!\s+(?:written|expressed|simplified|rewritten|verified|checked)))",
    re.IGNORECASE,
)
# A second answer offered after the stated one, in a later sentence. Only the answer itself is the subject
# ("the answer would be $14$"): a check after the answer ("the total would be $13$, too big") is not one.
_SECOND_ANSWER = re.compile(
    r"\b(?:(?:answer|result|value)\s+(?:would|could|might|may)\s+(?:also\s+)?be|it\s+(?:could|might|may)\s+(?:also\s+)?be"
    r"|might\s+argue\s+for)"
    r"\s+(?:\$|\\\(|\\boxed|-?\d)",
    re.IGNORECASE,
)
_RETRACTION = re.compile(
    r"^[\s$*]*(?:is|was)\s+(?:wrong|incorrect|not\s+(?:right|correct))\b"
    r"|\b(?:that|this|it)(?:'s|\s+is|\s+was)\s+(?:wrong|incorrect|not\s+(?:right|correct))\b",
    re.IGNORECASE,
)
_VALUE_MARK = re.compile(r"[\d$\\]")
# An alternative after a value: ", or possibly $8$", " (or 8)", " or maybe 8". (Each part needs its own
# first character, so that a long run of spaces is scanned once: callers also pass a bounded window.)
ALTERNATIVE_AFTER = re.compile(
    r"(?:\s|\$|\\\)|\\\]|\*)*(?:,\s*)?(?:\(\s*)?or\s+(?:(?:maybe|perhaps|possibly|probably|alternatively"
    r"|equivalently|else|even|also)\s+)?",
    re.IGNORECASE,
)


def bounded(before: str) -> bool:
    """Whether the text right before a value makes it a bound or negates it ("... is at least $", "not $")."""
    tail = before[-60:]
    lowered = tail.lower()
    if not any(word in lowered for word in _BOUND_WORDS):
        return False  # (a cheap check first: most values have no bound before them)
    return _BOUND_BEFORE.search(tail) is not None


def conditioned(after: str) -> bool:
    """Whether the text right after a value makes it conditional or doubtful ("$ if $n$ is even")."""
    rest = after[:200]
    closing = _CLOSING.match(rest)
    start = closing.end() if closing is not None else 0
    return _CONDITION_AFTER.match(rest, start) is not None


def opens_with_bound(text: str) -> bool:
    """Whether `text` opens with a bound ("at least 7", "more than $5$")."""
    return _BOUND_OPENING.match(text) is not None


def second_answer(after: str) -> bool:
    """Whether the text after the stated answer offers another one ("... the answer would be $14$") or takes
    it back ("... no, that's wrong.")."""
    window = after[:_SECOND_ANSWER_WINDOW]
    # (Cheap substring checks first: most answers are followed by nothing of the kind.)
    if (" be" in window or "argue" in window) and _SECOND_ANSWER.search(window) is not None:
        return True
    if "wrong" not in window and "correct" not in window and "right" not in window:
        return False
    for retraction in _RETRACTION.finditer(window):
        # "Hmm, no, that's wrong." takes the answer back; "My first try gave $6$, but that was wrong." is
        # about the value named before it in its own sentence.
        sentence_start = max(window.rfind(stop, 0, retraction.start()) for stop in ".!?\n") + 1
        if not _VALUE_MARK.search(window, sentence_start, retraction.start()):
            return True
    return False
