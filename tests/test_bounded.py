"""The bounded worker: a time limit and a memory limit that really stop symbolic work."""

from __future__ import annotations

import time
from typing import Iterator

from derive.bounded import run_bounded


def _spin() -> Iterator[str]:
    yield "started"
    while True:  # a pure-Python loop that never yields: only a kill stops it
        pass


def _hog() -> Iterator[str]:
    yield "started"
    blob = bytearray(8 * 1024**3)
    yield str(len(blob))


def _fail() -> Iterator[str]:
    yield "started"
    raise ValueError("broken formula")


def test_timeout_kills_the_worker_and_keeps_what_came_first() -> None:
    start = time.perf_counter()
    messages = list(run_bounded(_spin, timeout=0.5))
    assert [m.kind for m in messages] == ["item", "timeout"]
    assert messages[0].value == "started"
    assert time.perf_counter() - start < 5


def test_memory_limit_stops_a_runaway_allocation() -> None:
    messages = list(run_bounded(_hog, timeout=30, memory=512 * 1024**2))
    assert [m.kind for m in messages] == ["item", "error"]
    assert "out of memory" in messages[1].value


def test_an_exception_in_the_worker_is_reported_not_raised() -> None:
    messages = list(run_bounded(_fail, timeout=30))
    assert messages[-1].kind == "error"
    assert messages[-1].value == "ValueError: broken formula"


def test_results_stream_in_order() -> None:
    def work() -> Iterator[int]:
        yield from range(5)

    assert [m.value for m in run_bounded(work, timeout=30)] == [0, 1, 2, 3, 4]
