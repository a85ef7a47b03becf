"""One self-contained HTML page of verdicts: a summary table, then per identity its claim, its
derivation typeset as MathML, the numeric evidence, the counterexample if refuted, and plots.

Presentation only, over a `derive.check` Report. Nothing on the page is fetched: the CSS is
inline, plots are inline SVG and the math is MathML (browsers lay it out natively), so it
opens with no network and serves as a CI artifact. Every piece of user text (names,
descriptions, formulas, inputs from spec files) is escaped with html.escape; the catalog's own
descriptions and formulas are LaTeX, shown as MathML.
"""

from __future__ import annotations

import html
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..version import __version__
from .. import catalog
from ..bounded import run_bounded
from ..run.check import DEFAULT_SAMPLES, DEFAULT_TIMEOUT
from ..errors import DeriveError
from .latex import _SPECIAL, is_catalog_text, text_and_math
from ..model.spec import Identity
from ..model.verdict import VERDICTS, Report, Result

_MATHML_TAGS = frozenset(
    "math mrow mi mo mn ms mtext mspace msub msup msubsup mfrac msqrt mroot mstyle mpadded "
    "mphantom menclose merror munder mover munderover mtable mtr mtd mlabeledtr semantics "
    "annotation".split())
_UNESCAPE = {v: k for k, v in _SPECIAL.items()}


def _converter() -> Callable[[str], str]:
    """latex2mathml's convert, or a one-line error saying how to install it."""
    try:
        from latex2mathml.converter import convert
    except ImportError:
        raise DeriveError("the HTML report needs latex2mathml: pip install 'derive-checker[report]'") from None
    return convert


def require(*, plots: bool = True) -> None:
    """Raise the one-line install hint now if the report's optional dependencies are missing."""
    _converter()
    if plots:
        from .plot import warm_up

        warm_up()


# --- LaTeX lines -> MathML ----------------------------------------------------------------

def _depths(tex: str) -> Iterator[tuple[int, int]]:
    """(index, depth) of each brace, character and command start (escapes skipped), the depth
    counting open braces and environments; a brace is reported at the depth outside it."""
    depth, i = 0, 0
    while i < len(tex):
        c = tex[i]
        if c == "\\":
            yield i, depth
            depth += tex.startswith("\\begin{", i) - tex.startswith("\\end{", i)
            i += 2
            continue
        depth -= c == "}"
        yield i, depth
        depth += c == "{"
        i += 1


def split_columns(line: str) -> list[str]:
    """An align* line split at its alignment `&`s, leaving those inside braces or inside an
    environment (cases) and escaped `\\&` alone."""
    cuts = [i for i, d in _depths(line) if d == 0 and line[i] == "&"]
    return [line[a + 1:b] for a, b in zip([-1, *cuts], [*cuts, len(line)])]


def _text_groups(tex: str) -> list[tuple[str, str]]:
    """`tex` cut into ("math", ...) and ("text", ...) pieces at its top-level \\text{...}."""
    out: list[tuple[str, str]] = []
    pos, opened = 0, None
    for i, d in _depths(tex):
        if d != 0:
            continue
        if opened is None and tex.startswith("\\text{", i):
            opened = i
        elif opened is not None and tex[i] == "}":
            out += [("math", tex[pos:opened]), ("text", tex[opened + len("\\text{"):i])]
            pos, opened = i + 1, None
    out.append(("math", tex[pos:]))  # an unclosed \\text stays math (and falls back)
    return [(kind, piece) for kind, piece in out if piece.strip()]


def _unescape(text: str) -> str:
    """Text-mode LaTeX written by derive.latex.escape, back to plain text."""
    keys = sorted(_UNESCAPE, key=len, reverse=True)
    return re.sub("|".join(re.escape(k) for k in keys), lambda m: _UNESCAPE[m.group(0)], text)


def mathml(tex: str) -> str | None:
    """One LaTeX formula as a <math> element, or None where latex2mathml cannot convert it or
    its output is not well-formed MathML (an unknown command left as text, raw markup)."""
    try:
        out = _converter()(tex)
    except DeriveError:
        raise
    except Exception:  # latex2mathml raises its own and built-in errors on what it cannot read
        return None
    try:
        root = ET.fromstring(out)
    except ET.ParseError:
        return None
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag not in _MATHML_TAGS or any(not a.isalpha() or a.startswith("on") for a in el.attrib):
            return None
        if tag in ("mi", "mo") and el.text and "\\" in el.text:
            return None  # a command latex2mathml did not know, shown as its name
    return re.sub(r'\s+xmlns="[^"]*"', "", out)


@dataclass(frozen=True)
class Cell:
    """One column of a typeset line: its HTML and whether any piece fell back to LaTeX source."""

    html: str
    fallback: bool


def cell(tex: str) -> Cell:
    """A column of an align* line as HTML: \\text pieces as text, the rest as MathML."""
    pieces, fallback = [], False
    for kind, piece in _text_groups(tex):
        if kind == "text":
            pieces.append(f'<span class="text">{html.escape(_unescape(piece))}</span>')
            continue
        converted = mathml(piece)
        if converted is None:
            fallback = True
            pieces.append(f'<code class="tex">{html.escape(piece)}</code>')
        else:
            pieces.append(converted)
    return Cell(" ".join(pieces), fallback)


def derivation_table(lines: Iterable[str]) -> tuple[str, int]:
    """align* lines (as derive.latex.derivation_lines writes them) as an HTML table with the
    columns left side, relation and right side, note; and how many cells fell back."""
    rows, fallbacks = [], 0
    for line in lines:
        cols = split_columns(line)
        left, right = cols[0], cols[1] if len(cols) > 1 else ""
        note = "&".join(cols[3:]) if len(cols) > 3 else "&".join(cols[2:])
        cells = [cell(left), cell(right), cell(note)]
        fallbacks += sum(c.fallback for c in cells)
        rows.append("<tr>" + "".join(f'<td class="{k}">{c.html}</td>'
                                     for k, c in zip(("lhs", "rhs", "note"), cells)) + "</tr>")
    return '<table class="derivation">\n' + "\n".join(rows) + "\n</table>", fallbacks


# --- the page ---------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 70em; padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; }
table.summary td, table.summary th, table.numbers td, table.numbers th {
  padding: .25em .8em; border-bottom: 1px solid #e4e4e4; text-align: left; }
table.summary td.num, table.numbers td.num { font-variant-numeric: tabular-nums; text-align: right; }
.verdict { font-weight: 600; padding: .05em .5em; border-radius: .6em; color: white; }
.proved { background: #1a7f37; } .refuted { background: #cf222e; }
.consistent { background: #0969da; } .inconclusive { background: #9a6700; }
math { math-style: normal; font-size: 1.12em; }
table.derivation td { padding: .3em .3em; vertical-align: middle; }
table.derivation td.lhs { text-align: right; white-space: nowrap; }
table.derivation td.note { color: #57606a; font-size: .88em; padding-left: 2em; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .92em; }
pre { background: #f6f8fa; padding: .7em; overflow-x: auto; }
.counterexample { border-left: 4px solid #cf222e; padding: .2em 1em; background: #fff5f5; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; } .plots svg { max-width: 100%; height: auto; }
.note { color: #57606a; } .meta { color: #57606a; font-size: .92em; } .wide { overflow-x: auto; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _badge(verdict: str) -> str:
    kind = verdict if verdict in VERDICTS else "inconclusive"
    return f'<span class="verdict {kind}">{_e(verdict)}</span>'


def _anchor(index: int) -> str:
    return f"identity-{index}"


def _rel(result: Result, backend: str) -> str:
    return next((f"{n.max_rel_error:.1e}" for n in result.numeric if n.backend == backend), "-")


def _summary(report: Report, backends: list[str]) -> str:
    head = "".join(f"<th>{_e(b)} max rel err</th>" for b in backends)
    rows = []
    for k, r in enumerate(report.results):
        errs = "".join(f'<td class="num">{_rel(r, b)}</td>' for b in backends)
        rows.append(f'<tr><td><a href="#{_anchor(k)}">{_e(r.name)}</a></td><td>{_badge(r.verdict)}</td>'
                    f"<td>{_e(r.symbolic.status)}</td>{errs}<td class=\"num\">{r.seconds:.2f} s</td></tr>")
    return (f'<table class="summary"><tr><th>identity</th><th>verdict</th><th>symbolic</th>{head}'
            f"<th>time</th></tr>\n" + "\n".join(rows) + "\n</table>")


def _claim(identity: Identity) -> str:
    """The definitions and claims as written: the catalog's texts are LaTeX, shown as MathML;
    a spec file's are formula source, shown as code."""
    latex = catalog.CATALOG.get(identity.name) is identity
    target = identity.target or (identity.definitions[-1].name if identity.definitions else "")

    def item(lhs: str, lhs_tex: str, text: str) -> str:
        if latex and text:
            converted = mathml(f"{lhs_tex} = {text}")
            if converted is not None:
                return converted
        return f"<code>{_e(lhs)} = {_e(text or '(a formula)')}</code>"

    items = [f"<li>{item(d.name, _tex_name(d.name), d.text)}</li>" for d in identity.definitions]
    for c in identity.claims:
        lhs = f"d{target}/d{c.wrt}" if c.wrt else target
        lhs_tex = (rf"\frac{{\partial {_tex_name(target)}}}{{\partial {_tex_name(c.wrt)}}}" if c.wrt
                   else _tex_name(target))
        items.append(f"<li>{item(lhs, lhs_tex, c.text)} (claimed)</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _description(identity: Identity) -> str:
    """The description as HTML: the catalog's text with its $...$ math as MathML (LaTeX
    source where latex2mathml cannot convert it), anyone else's as escaped text."""
    if not is_catalog_text(identity.name, identity.description):
        return _e(identity.description)
    out = []
    for kind, piece in text_and_math(identity.description):
        if kind == "text":
            out.append(_e(_unescape(piece)))
        else:
            converted = mathml(piece)
            out.append(converted if converted is not None else f'<code class="tex">{_e(piece)}</code>')
    return "".join(out)


def _tex_name(name: str) -> str:
    """O_k -> O_{k}; W1 -> W1: an identifier as LaTeX, its part after '_' a subscript."""
    base, _, sub = name.partition("_")
    return f"{base}_{{{sub}}}" if sub else base


def _numbers(result: Result) -> str:
    rows = "".join(f'<tr><td>{_e(n.backend)} ({_e(n.dtype)})</td><td class="num">{n.samples}</td>'
                   f'<td class="num">{n.max_abs_error:.2e}</td><td class="num">{n.max_rel_error:.2e}</td>'
                   f'<td class="num">{n.rtol:g}</td></tr>' for n in result.numeric)
    sizes = "; ".join(f"{', '.join(f'{k}={v}' for k, v in s.sizes.items()) or 'scalars'}: {s.verdict}"
                      for s in result.sizes)
    every = result.symbolic_n.status
    return ('<table class="numbers"><tr><th>backend</th><th>samples</th><th>max abs error</th>'
            f"<th>max rel error</th><th>rtol</th></tr>{rows}</table>"
            f'<p class="meta">symbolic: {_e(result.symbolic.status)}'
            f"{' (' + _e(', '.join(result.symbolic.methods)) + ')' if result.symbolic.methods else ''}; "
            f"for every size n: {_e(every)}; sizes: {_e(sizes)}</p>")


def _counterexample(cx: dict[str, Any]) -> str:
    inputs = "\n".join(f"{k} = {v!r}" for k, v in cx.get("inputs", {}).items())
    return ('<div class="counterexample"><p><b>Counterexample</b> '
            f"({_e(cx.get('claim', ''))}, {_e(cx.get('backend', ''))}, sizes {_e(cx.get('sizes', {}))}, "
            f"entry {_e(tuple(cx.get('entry', ())))}): claimed <code>{_e(repr(cx.get('claimed')))}</code>, "
            f"true <code>{_e(repr(cx.get('true')))}</code>, |error| {cx.get('abs_error', 0):.3g} &gt; "
            f"tolerance {cx.get('tolerance', 0):.3g}</p>"
            f"<pre>{_e(inputs)}</pre><p>seed={_e(cx.get('seed'))}; rerun: <code>{_e(cx.get('rerun', ''))}"
            "</code></p></div>")


def _lines_of(identity: Identity, timeout: float) -> tuple[list[str] | None, str]:
    """The derivation's align* lines, computed in a bounded worker (SymPy on user input may
    take long), or None and the reason."""
    from ..symbolic.explain import explain
    from .latex import derivation_lines

    for msg in run_bounded(lambda: iter([derivation_lines(explain(identity))]), timeout=timeout):
        if msg.kind == "item":
            return msg.value, ""
        if msg.kind == "timeout":
            return None, f"the derivation did not finish within {timeout:g} s"
        return None, str(msg.value)
    return None, "the derivation produced nothing"


def _plots(identity: Identity, index: int, *, seed: int, samples: int, timeout: float) -> str:
    from . import plot

    try:
        prepared = plot.prepare(identity, seed=seed, samples=samples, timeout=timeout)
    except DeriveError as exc:
        return f'<p class="note">No plots: {_e(exc)}</p>'
    out = []
    for kind, make in (("fd", lambda: plot.fd_figure(plot.step_sweep(identity, prepared))),
                       ("errors", lambda: plot.errors_figure(plot.sample_errors(identity, prepared)))):
        try:
            out.append(plot.inline_svg(make(), f"p{index}-{kind}"))
        except DeriveError as exc:
            out.append(f'<p class="note">No {kind} plot: {_e(exc)}</p>')
    return '<div class="plots">' + "\n".join(out) + "</div>"


def _himmelblau(identities: list[Identity]) -> str:
    """The landscape with Adam's paths, once, for the first identity that is Himmelblau's."""
    from . import plot

    for identity in identities:
        try:
            descent = plot.himmelblau_descent(identity)
        except DeriveError:
            continue
        ends = ", ".join(f"({x:.4f}, {y:.4f})" for x, y in descent.ends)
        return (f"<h2 id=\"himmelblau\">Adam on Himmelblau's function (<code>{_e(identity.name)}</code>)</h2>"
                "<p>Adam (torch.optim.Adam's update) stepping with the claimed gradient from the "
                f"seeds' starting points ends at {ends}.</p>"
                f'<div class="plots">{plot.inline_svg(plot.himmelblau_figure(descent), "himmelblau")}</div>')
    return ""


def _section(identity: Identity, result: Result, k: int, *, seed: int, samples: int, timeout: float,
             plots: bool) -> str:
    """One identity's part of the page (its derivation and plots are computed here)."""
    parts = [f'<section><h2 id="{_anchor(k)}">{_e(result.name)} {_badge(result.verdict)}</h2>']
    source = identity.origin or identity.source
    parts.append(f"<p>{_description(identity)}</p>"
                 + (f'<p class="meta">source: {_e(source)}</p>' if source else ""))
    parts.append("<h3>Claim</h3>" + _claim(identity))
    if result.reason:
        parts.append(f"<p>{_e(result.reason)}</p>")
    if result.counterexample:
        parts.append(_counterexample(result.counterexample))
    lines, why = _lines_of(identity, timeout)
    if lines is None:
        parts.append(f'<h3>Derivation</h3><p class="note">Not typeset: {_e(why)}</p>')
    else:
        parts.append('<h3>Derivation</h3><div class="wide">' + derivation_table(lines)[0] + "</div>")
    parts.append("<h3>Numbers</h3>" + _numbers(result))
    if plots:
        parts.append(_plots(identity, k, seed=seed, samples=samples, timeout=timeout))
    if result.stability:
        from .stability import section_html

        parts.append(section_html(identity, result, k, seed=seed, plots=plots))
    parts.append("</section>")
    return "\n".join(parts)


def _sections(identities: list[Identity], report: Report, *, samples: int, timeout: float,
              plots: bool, jobs: int | None) -> list[str]:
    """Every identity's section, then the Himmelblau one (where plots are on): computed in
    `jobs` forked workers at once (default: the CPU count; 0: here, one after another)."""
    from ..run.pool import run_tasks

    def work(i: int) -> str:
        if i == len(identities):
            return _himmelblau(identities)
        return _section(identities[i], report.results[i], i, seed=report.seed, samples=samples,
                        timeout=timeout, plots=plots)

    count = len(identities) + plots
    jobs = os.cpu_count() or 1 if jobs is None else jobs
    if jobs == 0:
        return [work(i) for i in range(count)]
    out = [""] * count
    limit = lambda i: timeout * (2 + len(identities[i].sizes) if i < len(identities) else 1) + 60  # noqa: E731
    for outcome in run_tasks(count, work, jobs=jobs, limit=limit):
        if outcome.kind == "ok":
            out[outcome.index] = outcome.value
        else:
            what = identities[outcome.index].name if outcome.index < len(identities) else "the Himmelblau plot"
            out[outcome.index] = (f'<section><p class="note">Could not render {_e(what)}: {_e(outcome.kind)} '
                                  f"({_e(outcome.value)})</p></section>")
    return out


def render_html(identities: list[Identity], report: Report, *, title: str = "derive report",
                samples: int = DEFAULT_SAMPLES, timeout: float = DEFAULT_TIMEOUT,
                plots: bool = True, jobs: int | None = None) -> str:
    """The page for `report` (one result per identity of `identities`, in order); `jobs`
    worker processes compute the sections (default: the CPU count; 0: in this process)."""
    require(plots=plots)
    if len(identities) != len(report.results):
        raise DeriveError(f"{len(identities)} identities but {len(report.results)} results")
    backends = list(dict.fromkeys(n.backend for r in report.results for n in r.numeric)) or ["numpy"]
    counts = ", ".join(f"{n} {v}" for v in VERDICTS
                       if (n := sum(r.verdict == v for r in report.results)))
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1>",
             f'<p class="meta">{len(report.results)} identities: {_e(counts)}; seed {report.seed}; '
             f"{samples} samples per size; derive {_e(__version__)}</p>",
             _summary(report, backends),
             *_sections(identities, report, samples=samples, timeout=timeout, plots=plots, jobs=jobs),
             "</body></html>\n"]
    return "\n".join(parts)
