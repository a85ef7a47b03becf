"""Numerical stability, where people look: the `derive stability` listing, the one line under a
verdict, the figure of bits lost against input magnitude, and the report's section.

Presentation only: the numbers come from `derive.numeric.stability` (an analysis summary, as
plain data) and from `Result.stability`.
"""

from __future__ import annotations

import html
from typing import Any, Sequence, TextIO

from ..model.verdict import Result, Stability
from .figures import STYLE, figure_class, inline_svg
from .terminal import paint

_ORDER = {"definition": 0, "claim": 1, "autograd": 2}
_DTYPE_ORDER = {"float32": 0, "bfloat16": 1, "float16": 2, "float64": 3}
_COLORS = {"float64": "#555555", "float32": "#0969da", "bfloat16": "#cf222e", "float16": "#1a7f37"}
_PRECISION = {"float64": 53, "float32": 24, "bfloat16": 8, "float16": 11}


def headline(entries: Sequence[Stability]) -> Stability | None:
    """The entry a single line shows: float32 first, the forward before claims and gradients,
    the one that loses most."""
    if not entries:
        return None

    def key(e: Stability) -> tuple[float, ...]:
        kind = 2 if "(autograd)" in e.formula else 1 if "(claimed)" in e.formula else 0
        return (_DTYPE_ORDER.get(e.dtype, 9), kind, -e.bits_lost_worst)

    return min(entries, key=key)


def note(result: Result) -> str | None:
    """The one line under a verdict when a formula loses more than half its dtype's bits."""
    e = headline(result.stability)
    if e is None:
        return None
    name = e.formula.split(" = ")[0]
    text = (f"stability: {name} loses {_bits(e.bits_lost_worst)} of {_PRECISION.get(e.dtype, '?')} bits in "
            f"{e.dtype} ({e.region.split(';')[0]}")
    if e.cause:
        text += f": {e.cause}{' in ' + e.subexpression if e.subexpression and ' in the forward' not in e.cause else ''}"
    text += ")"
    if e.rewrite is not None:
        text += f"; proved rewrite {e.rewrite.formula} loses {_bits(e.rewrite.bits_lost_worst)}"
    more = len(result.stability) - 1
    if more:
        text += f"; {more} more (derive stability {result.name})"
    return text


def _bits(x: float) -> str:
    return f"{x:.0f}" if x >= 9.95 or abs(x - round(x)) < 0.05 else f"{x:.1f}"


def render(summaries: Sequence[dict[str, Any]], out: TextIO, *, color: bool = False) -> None:
    """`derive stability`: per identity, each formula and how many bits it loses in each dtype,
    where and why when more than half, and the proved rewrite."""
    for k, s in enumerate(summaries):
        if k:
            out.write("\n")
        sizes = ", ".join(f"{a}={n}" for a, n in s["sizes"].items()) or "scalars"
        out.write(f"{s['name']}  ({sizes}; sweep: {s['sweep'] or 'none'})\n")
        for line in s.get("notes", []):
            out.write(f"  {line}\n")
        formulas = sorted(s["formulas"], key=lambda f: _ORDER.get(f["kind"], 3))
        for f in formulas:
            title = f["formula"] if f["kind"] == "autograd" else f"{f['formula']} = {f['text']}"
            flagged = [d for d, o in f["dtypes"].items() if o["flagged"]]
            worst = ", ".join(f"{d} {_bits(o['bits_lost_worst'])}/{_PRECISION.get(d, '?')}"
                              for d, o in _sorted(f["dtypes"]))
            mark = paint("unstable", "refuted", color) if flagged else paint("stable", "proved", color)
            out.write(f"  {title}\n    {mark}: bits lost, worst: {worst}\n")
            for d, o in _sorted(f["dtypes"]):
                if not o["flagged"]:
                    continue
                why = f"; {o['cause']} in {o['subexpression']}" if o["cause"] else ""
                if o["cause"] and " in the forward" in o["cause"]:
                    why = f"; {o['cause'].replace(' in the forward', '')} (forward: {o['subexpression']})"
                out.write(f"    {d}: mean {o['bits_lost_mean']:.1f}, {o['region']}{why}\n")
            rw = f.get("rewrite")
            if rw and rw["proved"] and flagged:
                bits = ", ".join(f"{d} {_bits(o['bits_lost_worst'])}" for d, o in _sorted(rw["dtypes"]))
                out.write(f"    rewrite, proved equal: {rw['formula']}  (bits lost, worst: {bits})\n")
            elif flagged and f.get("note"):
                out.write(f"    no rewrite: {f['note']}\n")
    flagged = sum(len(s["stability"]) for s in summaries)
    ids = sum(bool(s["stability"]) for s in summaries)
    out.write(f"\n{len(summaries)} {'identity' if len(summaries) == 1 else 'identities'}: {ids} with a formula "
              f"that loses more than half its bits ({flagged} formula/dtype entries)\n")


def _sorted(items: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(items.items(), key=lambda kv: _DTYPE_ORDER.get(kv[0], 9))


# --- the figure ------------------------------------------------------------------------------

MAX_PANELS = 3


def figure(summary: dict[str, Any]) -> Any:
    """Bits lost against the sweep's signed input magnitude, one colour per dtype, the formula
    solid and its proved rewrite dashed: the flagged formulas (up to three), else the first."""
    import matplotlib

    formulas = [f for f in summary["formulas"] if any(o["flagged"] for o in f["dtypes"].values())]
    formulas = sorted(formulas, key=lambda f: _ORDER.get(f["kind"], 3))[:MAX_PANELS] or summary["formulas"][:1]
    with matplotlib.rc_context(STYLE):
        fig = figure_class()(figsize=(5.6, 1.6 + 1.9 * max(1, len(formulas))))
        fig.subplots_adjust(left=0.11, right=0.97, top=0.93, bottom=0.1, hspace=0.75)
        for k, f in enumerate(formulas):
            ax = fig.add_subplot(len(formulas), 1, k + 1)
            _panel(ax, f, summary.get("sweep", ""))
        if not formulas:
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, "no formula analysed", ha="center", va="center")
    return fig


def _panel(ax: Any, f: dict[str, Any], sweep: str) -> None:
    top = 1
    for d, o in _sorted(f["dtypes"]):
        x, y = o.get("curve", [[], []])
        if not len(x):
            continue
        color = _COLORS.get(d, "#333333")
        ax.plot(x, y, "-", color=color, lw=1.2, label=f"{d}")
        top = max(top, _PRECISION.get(d, 24))
        ax.axhline(_PRECISION.get(d, 24) / 2, color=color, lw=0.5, ls=":")
        rw = f.get("rewrite")
        if rw and rw["proved"] and d in rw["dtypes"] and "curve" in rw["dtypes"][d]:
            rx, ry = rw["dtypes"][d]["curve"]
            ax.plot(rx, ry, "--", color=color, lw=1.0, label=f"{d}, rewrite")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_ylabel("bits lost")
    ax.set_xlabel(f"input magnitude ({sweep})" if sweep else "input magnitude")
    title = f["formula"] if f["kind"] == "autograd" else f"{f['formula']} = {f['text']}"
    rw = f.get("rewrite")
    if rw and rw["proved"]:
        title += f"   (rewrite: {rw['formula']})"
    ax.set_title(title if len(title) < 90 else title[:87] + "...", loc="left")
    ax.set_ylim(-0.5, top * 1.5)
    ax.set_yticks([0, top / 2, top] if top <= 24 else [0, top])
    ax.legend(loc="upper center", ncol=3, frameon=False, fontsize=6)
    ax.grid(True, lw=0.3, alpha=0.5)


# --- the report's section --------------------------------------------------------------------

def table_html(entries: Sequence[Stability]) -> str:
    """The flagged formulas as a table (or a line saying none lost more than half its bits)."""
    if not entries:
        return '<p class="note">No formula loses more than half its bits in float32, bfloat16 or float16.</p>'
    e = html.escape
    rows = []
    for s in entries:
        rw = (f"<code>{e(s.rewrite.formula)}</code> ({_bits(s.rewrite.bits_lost_worst)} bits)"
              if s.rewrite is not None else "none proved")
        rows.append(f"<tr><td><code>{e(s.formula)}</code></td><td>{e(s.dtype)}</td>"
                    f'<td class="num">{s.bits_lost_mean:.1f}</td><td class="num">{_bits(s.bits_lost_worst)}</td>'
                    f"<td>{e(s.region)}</td><td>{e(s.cause)}{' in <code>' + e(s.subexpression) + '</code>' if s.subexpression else ''}</td>"
                    f"<td>{rw}</td></tr>")
    return ('<div class="wide"><table class="numbers stability"><tr><th>formula</th><th>dtype</th>'
            "<th>mean bits lost</th><th>worst</th><th>where</th><th>why</th><th>rewrite (proved equal)</th></tr>"
            + "".join(rows) + "</table></div>")


def section_html(identity: Any, result: Result, index: int, *, seed: int, plots: bool) -> str:
    """The report's stability section for one identity: the table, and where a formula is
    flagged, the figure of bits lost against input magnitude (computed here, in the report's
    worker for this identity)."""
    parts = ["<h3>Stability</h3>", table_html(result.stability)]
    if plots and result.stability:
        from ..numeric.stability import analyse

        try:
            summary = analyse(identity, dtypes=tuple(dict.fromkeys(s.dtype for s in result.stability)),
                              seed=seed).summary(curves=True)
            parts.append('<div class="plots stability">' + inline_svg(figure(summary), f"s{index}") + "</div>")
        except Exception as exc:  # the table stands without the figure
            parts.append(f'<p class="note">No stability plot: {html.escape(type(exc).__name__)}: '
                         f"{html.escape(str(exc)[:200])}</p>")
    return "\n".join(parts)


__all__ = ["note", "headline", "render", "figure", "table_html", "section_html"]
