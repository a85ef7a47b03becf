"""Run independent tasks in forked worker processes: parallel, isolated, bounded, interruptible.

Each worker is the leader of its own process group, so killing the group also stops the
symbolic workers it forked. A task that crashes its worker (a segfault, the out-of-memory
killer) or runs past its wall-time limit is reported as such and a fresh worker takes the
next task: one bad identity never stops the others. Ctrl-C in the parent kills every group.
"""

from __future__ import annotations

import atexit
import faulthandler
import multiprocessing as mp
import os
import signal
import time
import weakref
from dataclasses import dataclass
from multiprocessing import util as _mp_util  # noqa: F401 - its exit handler is registered before ours
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator

from .. import bounded
from ..bounded import die_with_parent

WORKER_MEMORY_BYTES = 12 * 1024**3
"""Address space a worker may add to what it inherits (numeric arrays, torch buffers)."""


@dataclass(frozen=True)
class Outcome:
    """What became of one task: "ok" (value), "error" (the exception), "crash" or "timeout"."""

    index: int
    kind: str
    value: Any
    seconds: float
    stage: str = ""
    """The last stage the task reported (see `bounded.stage`)."""


def _serve(conn: Connection, work: Callable[[int], Any], memory: int) -> None:
    os.setpgrp()
    die_with_parent()
    bounded.report_to(conn)  # `bounded.stage(...)` in the task now tells the parent where it is
    if not os.environ.get("DERIVE_DEBUG"):
        faulthandler.disable()  # a crash is reported by the parent, as one line
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    if memory:
        bounded.limit_memory(memory)
    while True:
        try:
            index = conn.recv()
        except (EOFError, OSError):
            return
        if index is None:
            return
        start = time.perf_counter()
        try:
            value = work(index)
            kind = "ok"
        except BaseException as exc:  # reported to the parent, which decides
            value, kind = exc, "error"
        try:
            conn.send((index, kind, value, time.perf_counter() - start))
        except (BrokenPipeError, EOFError):  # the parent is gone
            return
        except Exception as exc:  # e.g. an exception that does not pickle
            conn.send((index, "error", RuntimeError(f"{type(value).__name__}: {value}; {exc}"),
                       time.perf_counter() - start))


_LIVE: "weakref.WeakSet[_Worker]" = weakref.WeakSet()


@atexit.register  # runs before multiprocessing's own exit handler, which would wait for them
def _kill_leftovers() -> None:
    """Workers of a pool whose generator was never closed (an exception left it suspended)."""
    for w in list(_LIVE):
        if w.proc.is_alive():
            w.kill()


class _Worker:
    def __init__(self, work: Callable[[int], Any], memory: int) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_serve, args=(child, work, memory), daemon=False)
        self.proc.start()
        _LIVE.add(self)
        child.close()
        self.task: int | None = None
        self.started = 0.0
        self.stage = ""

    def give(self, index: int) -> None:
        self.task, self.started, self.stage = index, time.perf_counter(), ""
        self.conn.send(index)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.kill()
        else:
            self.conn.close()


def run_tasks(count: int, work: Callable[[int], Any], *, jobs: int,
              limit: Callable[[int], float], memory: int = WORKER_MEMORY_BYTES) -> Iterator[Outcome]:
    """Yield one Outcome per task index in 0..count-1, in completion order.

    `work(i)` runs in a forked worker (it may use anything the parent had before the fork;
    its return value must pickle). `limit(i)` is task i's wall-time limit in seconds.
    Closing the generator early (or Ctrl-C while it waits) kills the workers.
    """
    pending = list(range(count))[::-1]
    workers: list[_Worker] = []
    try:
        for _ in range(min(jobs, count)):
            workers.append(_Worker(work, memory))
        for w in workers:
            if pending:
                w.give(pending.pop())
        while any(w.task is not None for w in workers):
            busy = [w for w in workers if w.task is not None]
            now = time.perf_counter()
            deadline = min(w.started + limit(w.task) for w in busy)  # type: ignore[arg-type]
            ready = wait([w.conn for w in busy], timeout=max(0.0, deadline - now))
            for w in list(busy):
                index = w.task
                assert index is not None
                if w.conn in ready:
                    try:
                        message = w.conn.recv()
                    except (EOFError, OSError):
                        w.proc.join(1.0)
                        outcome = Outcome(index, "crash", w.proc.exitcode, time.perf_counter() - w.started,
                                          w.stage)
                        w = _replace(workers, w, work, memory)
                    else:
                        if message[0] == "stage":
                            w.stage = message[1]
                            continue
                        got, kind, value, seconds = message
                        outcome = Outcome(got, kind, value, seconds, w.stage)
                elif time.perf_counter() - w.started >= limit(index):
                    outcome = Outcome(index, "timeout", limit(index), time.perf_counter() - w.started, w.stage)
                    w = _replace(workers, w, work, memory)
                else:
                    continue
                w.task = None
                if pending:
                    w.give(pending.pop())
                yield outcome
    finally:
        for w in workers:
            if w.task is not None:
                w.kill()
            else:
                w.close()


def _replace(workers: list[_Worker], old: _Worker, work: Callable[[int], Any], memory: int) -> _Worker:
    old.kill()
    new = _Worker(work, memory)
    workers[workers.index(old)] = new
    return new
