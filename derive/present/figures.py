"""How derive's figures are drawn and written, shared by every figure (`plot`'s and the stability
figure in `stability`): the matplotlib Figure class (or a one-line error saying how to install
it), the house style, and a figure rendered as SVG or PNG bytes or as an <svg> element for an
HTML page. matplotlib is imported only when a figure is drawn, and used without pyplot."""

from __future__ import annotations

import io
import re
from typing import Any

from ..errors import DeriveError, SpecError

FORMATS = ("svg", "png")


def figure_class() -> Any:
    """The matplotlib Figure class, or a one-line error saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise DeriveError("plots need matplotlib: pip install 'derive-checker[report]'") from None
    return Figure


STYLE = {"svg.fonttype": "none", "svg.hashsalt": "derive", "font.size": 8,
         "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7}
"""The house style (text sizes are fixed when the artists are made, so draw under it too)."""


def render(fig: Any, fmt: str = "svg", *, dpi: int = 110) -> bytes:
    """A figure as SVG text (fonts as text, no metadata, so it stays small) or PNG bytes."""
    import matplotlib

    if fmt not in FORMATS:
        raise SpecError(f"unknown image format {fmt!r}; choose one of {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format=fmt, dpi=dpi,
                    metadata={"Date": None} if fmt == "svg" else {"Software": None})
    return buffer.getvalue()


def inline_svg(fig: Any, prefix: str) -> str:
    """A figure as an <svg> element for an HTML page: no XML prolog, no metadata, no namespace
    URLs, coordinates to 0.1 pt, and only the ids something refers to, prefixed so that several
    figures can share one document."""
    text = render(fig, "svg").decode("utf-8")
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    text = re.sub(r'\bd="([^"]*)"', lambda m: 'd="' + " ".join(
        re.sub(r"(\.\d)\d+", r"\1", m.group(1)).split()) + '"', text)
    refs = r'(url\(#|href="#)([\w.-]+)'
    used = {m[1] for m in re.findall(refs, text)}
    text = re.sub(r'\s+id="([^"]+)"', lambda m: f' id="{prefix}-{m.group(1)}"' if m.group(1) in used else "",
                  text)
    return re.sub(refs, lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)


__all__ = ["FORMATS", "STYLE", "figure_class", "render", "inline_svg"]
