"""Terminal niceties: verdicts in colour, only where a person is reading.

Colour is used when the stream is a terminal, `--no-color` was not given and the NO_COLOR
environment variable is unset (https://no-color.org convention); otherwise text stays plain,
so logs, pipes and files never see escape codes.
"""

from __future__ import annotations

import os
import re
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


_SYMBOLS = {r"\sigma": "σ", r"\partial": "∂", r"\delta": "δ", r"\sum": "Σ", r"\cdot": "·", r"\odot": "⊙",
            r"\top": "T", r"\Phi": "Φ", r"\varphi": "φ", r"\phi": "φ", r"\mu": "μ", r"\lambda": "λ",
            r"\nabla": "∇", r"\approx": "≈", r"\ne": "≠", r"\le": "≤", r"\ge": "≥", r"\in": "∈", r"\to": "→",
            r"\times": "×", r"\infty": "∞", r"\pi": "π", r"\alpha": "α", r"\beta": "β", r"\gamma": "γ",
            r"\epsilon": "ε", r"\eta": "η", r"\theta": "θ", r"\,": " ", r"\;": " ", r"\quad": "  ", r"\_": "_",
            r"\&": "&", r"\%": "%", r"\#": "#", r"\{": "{", r"\}": "}", r"\left": "", r"\right": "",
            r"\bigl": "", r"\bigr": "", r"\mid": "|", r"\ldots": "...", r"\dots": "...", r"\lVert": "‖",
            r"\rVert": "‖", r"\star": "*"}


def plain(text: str) -> str:
    """A description's LaTeX math as terminal text: $d\\sigma/dx = \\sigma(x)$ -> dσ/dx = σ(x)."""
    out = text.replace("$", "")
    out = re.sub(r"\\(?:operatorname|mathrm|text|mathbf|boldsymbol)\{([^{}]*)\}", r"\1", out)
    out = re.sub(r"\\hat\s*(?:\{(\w)\}|(\w))", lambda m: (m.group(1) or m.group(2)) + "\u0302", out)
    for k in sorted(_SYMBOLS, key=len, reverse=True):
        out = out.replace(k, _SYMBOLS[k])
    for _ in range(4):  # nested fractions and roots, a few levels
        out = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}",
                     lambda m: f"{_group(m.group(1))}/{_group(m.group(2))} ", out)
        out = re.sub(r"\\sqrt\{([^{}]*)\}", lambda m: f"√{_group(m.group(1))}", out)
    out = re.sub(r"\\([A-Za-z]+)", r"\1", out)   # \log, \tanh, \exp ... -> log, tanh, exp
    out = re.sub(r"([_^])\{([^{}]*)\}", r"\1\2", out)
    return re.sub(r"\s+", " ", out).strip()


def _group(s: str) -> str:
    return s if re.fullmatch(r"[^\s+\-]+", s.strip()) else f"({s.strip()})"

