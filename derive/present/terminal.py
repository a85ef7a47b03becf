"""Terminal niceties: verdicts in colour, only where a person is reading.

Colour is used when the stream is a terminal, `--no-color` was not given and the NO_COLOR
environment variable is unset (https://no-color.org convention); otherwise text stays plain,
so logs, pipes and files never see escape codes.
"""

from __future__ import annotations

import os
from typing import TextIO

from ..model.verdict import CONSISTENT, INCONCLUSIVE, PROVED, REFUTED

_CODES = {PROVED: "32", REFUTED: "31", CONSISTENT: "36", INCONCLUSIVE: "33"}  # green red cyan yellow


def use_color(stream: TextIO, *, disabled: bool = False) -> bool:
    """Whether to colour output written to `stream`."""
    if disabled or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, verdict: str, enabled: bool = True) -> str:
    """`text` in the colour of `verdict` (bold), or unchanged when colour is off or unknown."""
    code = _CODES.get(verdict)
    return f"\033[1;{code}m{text}\033[0m" if enabled and code else text


def elapsed(seconds: float) -> str:
    """A duration for a progress line: 4.2s, 1m05s."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"
