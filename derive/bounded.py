"""Run symbolic work in a worker process that a time limit really stops.

SymPy's `simplify` has no timeout and some inputs hang it inside C-level loops that
`signal.alarm` never interrupts, so the work runs in a forked child that is killed when its
time is up. The child streams results as it goes (the derivative first, then the proof), so
a proof that times out still leaves the derivative for the numeric check.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator

MEMORY_LIMIT_BYTES = 4 * 1024**3
"""Address space a symbolic worker may add to what it inherits before it is stopped."""


@dataclass(frozen=True)
class Message:
    """One item the worker produced, or the reason it stopped."""

    kind: str  # "item", "timeout", "error"
    value: Any = None
    seconds: float = 0.0
    stage: str = ""
    """The stage the work last reported (see `stage`): where a time-out stopped it."""


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


_REPORT: Any = None  # the pipe to the parent, inside a worker
_STAGE = ""


def limit_memory(extra: int) -> None:
    """Cap this process's address space at what it already maps (torch alone maps hundreds of
    MB, CUDA GBs) plus `extra` bytes, never above a cap it already has (a pool worker's)."""
    limit = _mapped_bytes() + extra
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def report_to(conn: Any) -> None:
    """Send `stage` reports to `conn` (a pool worker's pipe to its parent)."""
    global _REPORT, _STAGE
    _REPORT, _STAGE = conn, ""


def in_worker() -> bool:
    """True inside a bounded worker process."""
    return _REPORT is not None


def stage(name: str) -> None:
    """Tell the parent which stage the work is in (named in a time-out); no-op outside a worker."""
    global _STAGE
    if _REPORT is not None and name != _STAGE:
        _STAGE = name
        _REPORT.send(("stage", name))


def die_with_parent() -> None:
    """Linux: this process is killed when its parent dies (even by SIGKILL), so no worker
    outlives the run that started it. Elsewhere a no-op."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def _child(conn: Any, work: Callable[[], Iterator[Any]], memory: int) -> None:
    report_to(conn)
    die_with_parent()
    try:
        if memory:
            limit_memory(memory)
        for item in work():
            conn.send(("item", item))
        conn.send(("done", None))
    except BaseException as exc:  # report, never hang the parent
        if isinstance(exc, MemoryError):
            text = f"out of memory (more than {memory / 1024**3:g} GiB)"
        else:
            text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        conn.send(("error", text))
        if os.environ.get("DERIVE_DEBUG"):
            traceback.print_exc()
    finally:
        conn.close()


class Bounded:
    """A worker process started now; iterate it for its messages, `stop()` it any time."""

    def __init__(self, work: Callable[[], Iterator[Any]], *, timeout: float,
                 memory: int = MEMORY_LIMIT_BYTES) -> None:
        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(child, work, memory), daemon=True)
        self._timeout = timeout
        self._stage = ""
        self._start = time.perf_counter()
        self._proc.start()
        child.close()

    def __iter__(self) -> Iterator[Message]:
        try:
            while True:
                left = self._timeout - (time.perf_counter() - self._start)
                # what the worker sent in time is read even when the reader comes late
                if not self._conn.poll(max(left, 0.0)):
                    yield Message("timeout", seconds=time.perf_counter() - self._start, stage=self._stage)
                    return
                try:
                    kind, value = self._conn.recv()
                except EOFError:
                    self._proc.join(1.0)
                    yield Message("error", f"worker died (exit code {self._proc.exitcode})",
                                  time.perf_counter() - self._start)
                    return
                if kind == "done":
                    return
                if kind == "stage":
                    self._stage = value
                    continue
                yield Message(kind, value, time.perf_counter() - self._start, self._stage)
                if kind == "error":
                    return
        finally:
            self.stop()

    def stop(self) -> None:
        """Kill the worker if it still runs, and release its pipe."""
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join()
        self._conn.close()


def run_bounded(work: Callable[[], Iterator[Any]], *, timeout: float,
                memory: int = MEMORY_LIMIT_BYTES) -> Iterator[Message]:
    """Yield what `work()` yields, stopping it for good after `timeout` seconds in all."""
    yield from Bounded(work, timeout=timeout, memory=memory)
