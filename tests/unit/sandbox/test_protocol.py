"""The runner's wire format, its result serialization and its config, in-process (no runner started)."""

from __future__ import annotations

import json
import os
import struct

import pytest

from sandbox.runner import harness, isolation, outcome, protocol


def test_frame_round_trip_through_a_pipe() -> None:
    read_fd, write_fd = os.pipe()
    try:
        message = {"op": "run", "stdin": "1 2\n\u00e9\u4e2d", "args": [1, [2, 3], {"k": None}]}
        protocol.write_frame(write_fd, message)
        protocol.write_frame(write_fd, {"op": "close"})
        os.close(write_fd)
        assert protocol.read_frame(read_fd) == message
        assert protocol.read_frame(read_fd) == {"op": "close"}
        assert protocol.read_frame(read_fd) is None  # end of stream between frames
    finally:
        os.close(read_fd)


def test_a_truncated_frame_is_an_error_not_an_end() -> None:
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, protocol.encode_frame({"op": "ping"})[:-2])
        os.close(write_fd)
        with pytest.raises(EOFError):
            protocol.read_frame(read_fd)
    finally:
        os.close(read_fd)


def test_an_oversized_frame_header_is_refused() -> None:
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, struct.pack(">I", protocol.MAX_FRAME_BYTES + 1))
        with pytest.raises(ValueError, match="exceeds"):
            protocol.read_frame(read_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"no_op": 1}', b'{"op": 3}', b"not json"])
def test_a_frame_must_hold_an_object_with_an_op(body: bytes) -> None:
    with pytest.raises(ValueError):
        protocol.decode_frame_body(body)


def test_strings_with_lone_surrogates_survive_the_frame() -> None:
    message = {"op": "run", "stdin": "a\udcffb"}
    encoded = protocol.encode_frame(message)
    assert protocol.decode_frame_body(encoded[4:]) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ((1, 2), [1, 2]),
        ([(1, "a"), [True, None]], [[1, "a"], [True, None]]),
        ({"a": (1.5,)}, {"a": [1.5]}),
        ({1: "x", False: "y", None: "z", 2.5: 0}, {"1": "x", "false": "y", "null": "z", "2.5": 0}),
        ("\u00e9", "\u00e9"),
        (10**30, 10**30),
    ],
)
def test_results_become_plain_json(value: object, expected: object) -> None:
    assert json.loads(harness.to_json(value)) == expected


def test_subclasses_count_as_their_base_type_whatever_they_override() -> None:
    class Liar(str):
        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 0

        def __str__(self) -> str:
            return "forged"

    class SneakyList(list):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(["forged"])

    class SneakyInt(int):
        def __int__(self) -> int:
            return 999

        def __repr__(self) -> str:
            return "999"

    assert json.loads(harness.to_json(Liar("real"))) == "real"
    assert json.loads(harness.to_json(SneakyList([1, 2]))) == [1, 2]
    assert json.loads(harness.to_json(SneakyInt(5))) == 5


@pytest.mark.parametrize("value", [{1, 2}, object(), float("nan"), float("inf"), b"bytes", {(1, 2): 3}, 1j])
def test_values_that_are_not_json_are_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        harness.to_json(value)


def test_a_cyclic_result_is_refused() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises((ValueError, RecursionError)):
        harness.to_json(cyclic)


def test_result_records_parse_only_when_well_formed() -> None:
    good = b"R" + struct.pack(">I", 3) + b"[1]" + b"E" + struct.pack(">I", 11) + b"MemoryError"
    assert outcome.parse_records(good) == [(b"R", b"[1]"), (b"E", b"MemoryError")]
    assert outcome.parse_records(b"") == []
    assert outcome.parse_records(b"R" + struct.pack(">I", 9) + b"[1]") is None  # short body
    assert outcome.parse_records(b"X" + struct.pack(">I", 0)) is None  # unknown tag
    assert outcome.parse_records(b"R\x00") is None  # short header


@pytest.mark.parametrize("call", [True, False])
def test_a_result_record_that_is_not_utf8_is_no_result_not_our_failure(call: bool) -> None:
    """The test writes its result channel (fd 3) itself if it likes: bytes that are not UTF-8 there are no
    result (a call's runtime_error), never an exception in the session process (an infrastructure error)."""
    forged = b"R" + struct.pack(">I", 1) + b"\xff"
    judged = outcome.judge(
        0, 0.1, None, None, 0.1, bytearray(b"WRONG\n"), bytearray(), forged, b"k",
        probe=False, expect_result=call, cpu_time_s=1.0, cgroup_shared=None,
    )  # fmt: skip
    assert judged["result_json"] is None
    assert judged["outcome"] == ("runtime_error" if call else "ok")
    surrogate = b"R" + struct.pack(">I", 5) + '"\udcff"'.encode("utf-8", "surrogatepass")
    judged = outcome.judge(
        0, 0.1, None, None, 0.1, bytearray(), bytearray(), surrogate, b"k",
        probe=False, expect_result=True, cpu_time_s=1.0, cgroup_shared=None,
    )  # fmt: skip
    assert (judged["outcome"], judged["result_json"]) == ("ok", '"\udcff"')  # as the harness encodes them


def test_config_rejects_an_unknown_namespace_mode() -> None:
    with pytest.raises(ValueError, match="namespaces"):
        isolation.Config({"namespaces": "sometimes"})
    assert isolation.Config(None).namespaces == "auto"


def test_levels_tried_in_order() -> None:
    assert isolation.plan_levels(isolation.Config({"namespaces": "off"})) == ["none"]
    auto = isolation.plan_levels(isolation.Config({"namespaces": "auto"}))
    required = isolation.plan_levels(isolation.Config({"namespaces": "require"}))
    assert auto[-1] == "none" and "none" not in required
    assert auto[:-1] == required


def test_the_output_cap_keeps_the_largest_result_frame_sendable() -> None:
    """Output and a call's result, each at the cap and all control bytes (6 bytes each as JSON text), still
    fit in one frame: a test cannot make its own result unsendable (an infrastructure error)."""
    import pydantic

    from sandbox.schemas import MAX_OUTPUT_BYTES, Limits

    worst = 6 * (2 * MAX_OUTPUT_BYTES + (1 << 16)) + (1 << 20)  # stdout, result (+ one read), the rest
    assert worst < protocol.MAX_FRAME_BYTES
    with pytest.raises(pydantic.ValidationError):
        Limits(max_output_bytes=MAX_OUTPUT_BYTES + 1)


def test_whatever_a_test_writes_on_its_result_channel_is_judged_never_raised() -> None:
    """Random records (any tag, length, bytes): judging them never raises in the session process."""
    import random

    rng = random.Random(0)
    for _ in range(2000):
        channel = b""
        for _ in range(rng.randrange(0, 4)):
            body = rng.randbytes(rng.randrange(0, 12))
            size = len(body) if rng.random() < 0.8 else rng.randrange(0, 1 << 32)
            channel += rng.choice([b"R", b"E", b"C", b"X"]) + struct.pack(">I", size) + body
        for call in (True, False):
            judged = outcome.judge(
                rng.choice([0, 1 << 8, 9]), 0.1, None, None, 0.1, bytearray(), bytearray(), channel, b"k",
                probe=False, expect_result=call, cpu_time_s=1.0, cgroup_shared=None,
            )  # fmt: skip
            assert judged["outcome"] in ("ok", "runtime_error"), (channel, judged)
