"""Guards for the adversarial tests: none runs longer than its limit, writes a file outside its
tmp_path, or opens a network socket.

Writes and sockets are watched with a Python audit hook (sys.addaudithook), which also sees
what forked workers do before they exit. Each test runs with its tmp_path as the working
directory, so a stray relative path lands there and not in the repository.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis.configuration import storage_directory

DEFAULT_LIMIT_S = 20.0
"""Wall-time limit of one adversarial test; `@pytest.mark.limit(seconds)` changes it."""

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_WATCHED = {"open", "os.mkdir", "os.rename", "os.replace", "os.symlink", "os.link", "os.truncate",
            "shutil.copyfile", "shutil.move", "socket.connect", "socket.bind", "socket.sendto"}


class _Watch:
    """What the code under test tried to do: paths it wrote outside the allowed roots, sockets."""

    def __init__(self) -> None:
        self.active = False
        self.allowed: tuple[str, ...] = ()
        self.violations: list[str] = []

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active or event not in _WATCHED:
            return
        if event.startswith("socket."):
            address = args[1] if len(args) > 1 else None
            if isinstance(address, tuple):  # AF_INET(6): a network address; AF_UNIX paths are local
                self.violations.append(f"{event} {address!r}")
            return
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
            if not writes or isinstance(path, int):
                return
        else:
            path = args[-1] if event in ("os.rename", "os.replace", "shutil.copyfile",
                                         "shutil.move", "os.symlink", "os.link") else args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)):
            return
        full = os.path.realpath(os.fspath(path))
        if "__pycache__" in full or full.startswith(self.allowed):
            return
        self.violations.append(f"{event} {full}")


_HYPOTHESIS = os.path.realpath(storage_directory("", intent_to_write=False).home_directory)
"""Hypothesis' own cache (its unicode tables): the test harness, not the code under test."""
_WATCH = _Watch()
sys.addaudithook(_WATCH.hook)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "limit(seconds): wall-time limit of an adversarial test")


@pytest.fixture(autouse=True)
def _guarded(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    marker = request.node.get_closest_marker("limit")
    limit = float(marker.args[0]) if marker else DEFAULT_LIMIT_S
    monkeypatch.chdir(tmp_path)
    _WATCH.allowed = (os.path.realpath(tmp_path.parent),  # this session's temporary directories
                      os.path.join(os.path.realpath(tempfile.gettempdir()), "pymp-"),  # multiprocessing
                      _HYPOTHESIS, "/dev/")
    _WATCH.violations = []
    _WATCH.active = True
    start = time.perf_counter()
    try:
        yield
    finally:
        _WATCH.active = False
    elapsed = time.perf_counter() - start
    violations, _WATCH.violations = _WATCH.violations, []
    assert not violations, f"the test wrote outside tmp_path or opened a socket: {violations[:5]}"
    assert elapsed <= limit, f"the test took {elapsed:.1f} s, over its limit of {limit:g} s"
