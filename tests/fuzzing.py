"""What the fuzz tests share: byte mutations of a seed, a hang guard per case, and counts per input kind.

``SKINEDGE_FUZZ_EXAMPLES`` sets the cases per fuzz test (CI: the default, a few seconds each);
``SKINEDGE_FUZZ_REPORT=path.json`` writes the counts per kind and outcome when the module ends.
"""

from __future__ import annotations

import collections
import faulthandler
import os
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from skinedge.errors import SkinedgeError

CORPUS = Path(__file__).parent / "fuzz_corpus"
HANG_S = 10  # a case that runs longer is a hang: the process dumps every thread's stack and exits
EXAMPLES = int(os.environ.get("SKINEDGE_FUZZ_EXAMPLES", "100"))
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00",
               b"\xff\xff", b"\x00\x80", b"\x01\x00\x00\x80")


def fuzz_settings(examples: int | None = None) -> settings:
    """Bounded cases, no wall-clock deadline (the hang guard is the limit), no example database written into
    the checkout; derandomised in CI so a red run replays."""
    return settings(max_examples=examples or EXAMPLES, deadline=None, database=None,
                    derandomize=bool(os.environ.get("CI")),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def seed(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


@st.composite
def mutated(draw, original: bytes, most: int = 8) -> bytes:
    """``original`` with 1..``most`` edits: bit flips, random or boundary bytes over header fields, cuts,
    insertions, duplicated and deleted runs."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, most))):
        op = draw(st.sampled_from(("flip", "byte", "boundary", "truncate", "insert", "duplicate", "delete")))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "boundary":
            value = draw(st.sampled_from(INTERESTING))
            data[at:at + len(value)] = value
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "duplicate":
            run = data[at:at + draw(st.integers(1, 64))]
            data[at:at] = run * draw(st.integers(1, 4))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 32))]
    return bytes(data)


def ends_cleanly(kind: str, call: Callable[[], Any]) -> Any:
    """Run one case: it returns (counted ``output``) or raises a one-line :class:`SkinedgeError` (counted
    ``one clear line``) within :data:`HANG_S`. Any other exception propagates: at the CLI it would be a
    traceback, so the fuzz test fails on it and Hypothesis shrinks the input."""
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        result = call()
    except SkinedgeError as exc:
        message = str(exc).strip()
        assert message and "\n" not in message, f"{kind}: not one clear line: {message!r}"
        COUNTS[kind]["one clear line"] += 1
        return None
    finally:
        faulthandler.cancel_dump_traceback_later()
    COUNTS[kind]["output"] += 1
    return result
