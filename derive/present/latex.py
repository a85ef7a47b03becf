"""Derivations typeset: an align* fragment, GitHub Markdown, or a standalone LaTeX document.

Presentation only: it renders a `derive.symbolic.explain.Explanation` (and, where given, the
verdict of `derive.check`). Notation follows the textbooks: O_k for a node's entry at its index,
delta_k for the adjoint of a pre-activation, sigma for the sigmoid, delta_ij for Kronecker
(the printer: `latex_printer`). The LaTeX is fitted to the page: wide formulas are broken
(`latex_fit`), wide matrices written entry by entry, notes set as tags (see `layout`).
Catalog descriptions are LaTeX (text with $...$ math); anyone else's are plain text, escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp

from ..symbolic.explain import ClaimExplanation, Explanation
from ..model.verdict import Result
from .latex_fit import _broken, tex_width
from .latex_printer import _partial, _subscript, _text, escape, tex
from .latex_printer import _SPECIAL, DerivePrinter  # noqa: F401  (re-exported: report.py, tests)

FORMATS = ("tex", "markdown", "standalone")



# --- descriptions: the catalog's are text with $...$ math; anyone else's are plain text ------

def is_catalog_text(name: str, description: str) -> bool:
    """Whether `description` is the built-in catalog's own for identity `name`: LaTeX, text with
    $...$ math. Any other (a spec file's, a user module's) is plain text and is escaped."""
    from .. import catalog

    known = catalog.CATALOG.get(name)
    return known is not None and known.description == description


def text_and_math(description: str) -> list[tuple[str, str]]:
    """A catalog description cut at its unescaped $: ("text", ...) and ("math", ...) pieces."""
    pieces = re.split(r"(?<!\\)\$", description)
    return [("math" if k % 2 else "text", p) for k, p in enumerate(pieces) if p]


def description_tex(name: str, description: str) -> str:
    """A description for LaTeX's text mode: the catalog's as written, anyone else's escaped."""
    return description if is_catalog_text(name, description) else escape(description)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|$~]|^[#>+-])")


def description_markdown(name: str, description: str) -> str:
    """A description for GitHub Markdown: the catalog's with its $...$ math as is, anyone
    else's with Markdown's special characters escaped (a $ of theirs is no math)."""
    return description if is_catalog_text(name, description) else markdown_plain(description)


def markdown_plain(text: str) -> str:
    """Plain text for Markdown: its special characters escaped, so that it shows as written."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


# --- the derivation as rows ---------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One line of a derivation: `lhs rel rhs[0] = rhs[1] ...` and a note (a rule's name).

    rhs pieces are SymPy objects (typeset by the house printer) or LaTeX strings; `prefix`
    is LaTeX set before them (\\text{claimed: }); `subject` names what an entry of a matrix
    rhs is an entry of; a `verdict` row is only its note, how the claim's proof closed.
    """

    lhs: str = ""
    rel: str = ""
    rhs: tuple[Any, ...] = ()
    prefix: str = ""
    note: str = ""
    subject: str = ""
    verdict: bool = False


Show = Callable[[Any], str]


def _piece(p: Any, show: Show) -> str:
    return p if isinstance(p, str) else show(p)


def _line(row: Row, show: Show) -> str:
    """The row as one align* line (the form the Markdown, Jupyter and HTML outputs read)."""
    if row.verdict:
        return "&" + _text(row.note)
    head = f"{row.lhs} &{row.rel} " if row.lhs else "&"
    line = head + row.prefix + " = ".join(_piece(p, show) for p in row.rhs)
    return line + (f" && {_text(row.note)}" if row.note else "")


def derivation_rows(ex: Explanation) -> tuple[list[Row], Show]:
    """The derivation's rows, and the printer that typesets their SymPy pieces."""
    g = ex.graph
    taken = {str(s) for s in g.sizes.values()}
    letters: dict[Any, str] = {}
    for index, size in g.ranges.items():
        letters.setdefault(size, str(index))

    def at(name: str) -> str:
        node = g.nodes[name]
        return tex(node.at(node.index), taken)

    def show(e: Any) -> str:
        return tex(e, taken, letters)

    rows = [Row(at(st.node), "=", (st.expr,), subject=at(st.node)) for st in ex.steps if st.kind == "define"]
    for claim in ex.claims:
        rows.extend(_claim_rows(ex, claim, at, show))
    return rows, show


def derivation_lines(ex: Explanation) -> list[str]:
    """The lines of the align* environment (each ends without the trailing \\\\), one per row,
    however wide: the form the Markdown, Jupyter and HTML outputs show."""
    rows, show = derivation_rows(ex)
    return [_line(r, show) for r in rows]


def _claim_rows(ex: Explanation, claim: ClaimExplanation, at: Any, show: Show) -> list[Row]:
    g = ex.graph
    rows = []
    target = at(g.target)
    if claim.wrt is None:
        rows.append(Row(target, "=", (claim.claimed,), note="claimed value", subject=target))
        subject = target
    else:
        subject = _partial(target, at(claim.wrt))
        chain = [_partial(at(a), at(b)) for a, b in zip(claim.path, claim.path[1:])]
        free = {str(i) for i in (*g.nodes[g.target].index, *g.nodes[claim.wrt].index)}
        summed = sorted({str(i) for n in claim.path[1:-1] for i in g.nodes[n].index} - free)
        sums = "".join(rf"\sum_{{{s}}} " for s in summed)
        if len(chain) > 1:
            rows.append(Row(subject, "=", (f"{sums}{' '.join(chain)}",), note="chain rule"))
        shown: set[tuple[str, str]] = set()
        for a, b in zip(claim.path, claim.path[1:]):
            for st in ex.steps:
                if st.kind == "local" and (st.node, st.parent) == (a, b) and (a, b) not in shown:
                    shown.add((a, b))
                    local = _partial(at(a), at(b))
                    pieces = (st.expr,) if st.raw is None else (st.raw, st.expr)
                    rows.append(Row(local, "=", pieces, note=st.note, subject=local))
            for st in ex.steps:
                if st.kind == "delta" and st.node == b and (b, "delta") not in shown:
                    shown.add((b, "delta"))
                    rows.append(Row(show(_delta(ex, b)), ":=", (_partial(target, at(b)), st.expr),
                                    note="names the adjoint", subject=_partial(target, at(b))))
        rows.append(Row(subject, "=", (claim.derived,), subject=subject))
        rows.append(Row(rhs=(claim.claimed,), prefix=_text("claimed: ") + " ", subject=subject))
    verdict = (f"claimed - derived = 0 ({claim.method})" if claim.proved
               else "claimed - derived not shown to be 0")
    scope = " for every size" if ex.for_every_n and claim.proved else ""
    rows.append(Row(note=verdict + scope, verdict=True))
    return rows


def _delta(ex: Explanation, name: str) -> Any:
    return next(st.raw for st in ex.steps if st.kind == "delta" and st.node == name)


# --- the rows laid out on a page ------------------------------------------------------------
#
# A row too wide is split at its = signs, a formula too wide broken (`latex_fit`), a matrix too
# wide written entry by entry. Rule notes and verdicts are \tag*s: amsmath sets a tag on a line
# of its own when the formula leaves it no room.

PAGE_WIDTH = 440.0
"""Points a derivation may take (the standalone document's text is about 500pt wide; the
estimates of widths err wide, and this leaves them room)."""
_INDENT = 22.0  # \qquad before a continuation line
_LONG_NOTE = 0.5  # of the page: a longer note is set in a \parbox that wide


def _is_array(p: Any) -> bool:
    return isinstance(p, (sp.MatrixBase, sp.NDimArray))


def _entries(p: Any) -> list[tuple[tuple[int, ...], Any]]:
    """(index, entry) of a matrix or array; a column vector's entries by one index."""
    if isinstance(p, sp.MatrixBase):
        if p.cols == 1:
            return [((i,), p[i, 0]) for i in range(p.rows)]
        return [((i, j), p[i, j]) for i in range(p.rows) for j in range(p.cols)]
    arr = np.array(p.tolist(), dtype=object)
    return [(idx, arr[idx]) for idx in np.ndindex(arr.shape)]


def _entry_lhs(row: Row, idx: tuple[int, ...]) -> str:
    return rf"\left[{row.subject or row.lhs}\right]" + _subscript([str(i) for i in idx])


def _note_tag(note: str, width: float) -> str:
    text = r"\small " + escape(note)
    if tex_width(r"\text{" + escape(note) + "}") * 0.92 > _LONG_NOTE * width:
        return rf"\tag*{{\parbox[t]{{{_LONG_NOTE}\linewidth}}{{\raggedleft {text}}}}}"
    return rf"\tag*{{{text}}}"


def layout(rows: Sequence[Row], show: Show, width: float = PAGE_WIDTH) -> list[str]:
    """The rows as align* lines that fit `width` points: a row too wide is split at its = into
    lines, a matrix too wide is written entry by entry, a formula too wide is broken (see
    above); notes are \\tag*s, so amsmath moves one to a line of its own when it must."""
    lhs_width = max([tex_width(r.lhs) for r in rows] + [tex_width(_entry_lhs(r, (0, 0))) for r in rows
                     if any(_is_array(p) for p in r.rhs)] + [0.0])
    budget = width - lhs_width
    out: list[list[str]] = []  # [line, tag]
    for row in rows:
        if row.verdict:
            tag = _note_tag(row.note, width)
            if out and not out[-1][1]:
                out[-1][1] = tag
            else:
                out.append(["&", tag])
            continue
        lines = _row_lines(row, show, budget)
        out.extend([line, ""] for line in lines)
        if row.note:
            out[-1][1] = _note_tag(row.note, width)
    return [f"{line} {tag}" if tag else line for line, tag in out]


def _row_lines(row: Row, show: Show, budget: float) -> list[str]:
    """One row's lines, each no wider than `budget` points where it can be helped."""
    texts = [_piece(p, show) for p in row.rhs]
    whole = " = ".join(texts)
    if tex_width(row.rel) + tex_width(row.prefix + whole) <= budget:
        return [_line(Row(row.lhs, row.rel, (whole,), row.prefix), show)]
    lines: list[str] = []
    for k, (p, text) in enumerate(zip(row.rhs, texts)):
        rel = row.rel if k == 0 else "="
        prefix = row.prefix if k == 0 else ""
        first = budget - tex_width(rel) - tex_width(prefix)
        if _is_array(p) and tex_width(text) > first:
            for idx, entry in _entries(p):
                if rel:
                    head, used = f"{_entry_lhs(row, idx)} &{rel} ", tex_width(rel)
                else:
                    head = f"&{prefix}{_entry_lhs(row, idx)} = "
                    used = tex_width(prefix + _entry_lhs(row, idx) + " =")
                lines += _broken(head, show(entry), budget - used, budget - _INDENT)
            continue
        lhs = row.lhs if k == 0 else ""
        head = (f"{lhs} &{rel} " if lhs else f"&{rel} ") + prefix if rel else f"&{prefix}"
        lines += _broken(head, text, first, budget - _INDENT)
    return lines



def _comment(s: str) -> str:
    return " ".join(s.split())


def render_tex(ex: Explanation, *, width: float = PAGE_WIDTH) -> str:
    """An align* fragment, ready to paste into a paper (amsmath), its lines fitted to `width`
    points: each rule's name and the proof's verdict are \\tag*s."""
    rows, show = derivation_rows(ex)
    lines = layout(rows, show, width)
    body = " \\\\\n".join(f"  {line}" for line in lines)
    needs = "% needs \\usepackage{graphicx} (a formula is scaled to fit)\n" if any(r"\resizebox" in x for x in lines) else ""
    return (f"% {ex.name}: {_comment(ex.description)}\n{needs}"
            f"\\begin{{align*}}\n{body}\n\\end{{align*}}\n")


def _evidence(result: Result) -> str:
    rows = ["| backend | samples | max abs error | max rel error |", "|---|---|---|---|"]
    for n in result.numeric:
        rows.append(f"| {n.backend} ({n.dtype}) | {n.samples} | {n.max_abs_error:.2e} | {n.max_rel_error:.2e} |")
    every = {"proved": "for every size", "not applicable": "no size to vary"}.get(
        result.symbolic_n.status, f"symbolic n: {result.symbolic_n.status}")
    head = f"**Verdict: {result.verdict}** (symbolic: {result.symbolic.status}, {every})"
    if result.reason:
        head += f"\n\n{result.reason}"
    return head + "\n\n" + "\n".join(rows)


def render_markdown(ex: Explanation, result: Result | None = None) -> str:
    """GitHub-renderable Markdown: the derivation in $$ ... $$, the verdict and its evidence."""
    lines = derivation_lines(ex)
    math = " \\\\\n".join(lines).replace("&&", r"\quad ").replace("&", "")
    out = [f"## `{ex.name}`", "", description_markdown(ex.name, ex.description), ""]
    if result is not None:
        out += [_evidence(result), ""]
    out += ["$$", r"\begin{aligned}", math, r"\end{aligned}", "$$", ""]
    if ex.source:
        out += [f"Source: {markdown_plain(ex.source)}", ""]
    return "\n".join(out)


PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[margin=2cm]{geometry}
\usepackage{amsmath,amssymb,graphicx}
\allowdisplaybreaks
\title{%s}
\date{}
\begin{document}
\maketitle
"""


def render_standalone(explanations: list[Explanation], results: dict[str, Result] | None = None,
                      title: str = "derive: derivations") -> str:
    """A complete LaTeX document (amsmath): a section per family, a subsection per identity,
    its description (the catalog's typeset as math), source, verdict and derivation."""
    parts = [PREAMBLE % escape(title)]
    family = None
    for ex in explanations:
        if len(explanations) > 1 and ex.family != family:
            family = ex.family
            heading = family.upper() if len(family) <= 3 else family.replace("_", " ").capitalize()
            parts.append(f"\\section{{{escape(heading or 'Identities')}}}\n")
        parts.append(f"\\subsection*{{\\texttt{{{escape(ex.name)}}}}}\n"
                     f"\\noindent {description_tex(ex.name, ex.description)}\\par\n")
        if ex.source:
            parts.append(f"\\smallskip{{\\small\\raggedright\\noindent Source: {escape(ex.source)}\\par}}\n")
        result = (results or {}).get(ex.name)
        if result is not None:
            parts.append(f"\n\\noindent Verdict: \\textbf{{{result.verdict}}}"
                         f" (numeric max relative error "
                         f"{max((n.max_rel_error for n in result.numeric), default=0):.1e}).\n")
        parts.append(render_tex(ex))
    parts.append("\\end{document}\n")
    return "\n".join(parts)


def result_markdown(result: Result) -> str:
    """A verdict as Markdown (Jupyter's _repr_markdown_)."""
    return f"### `{result.name}`\n\n" + _evidence(result) + "\n"


def explanation_latex(ex: Explanation) -> str:
    """A derivation as display math (Jupyter's _repr_latex_)."""
    body = " \\\\\n".join(derivation_lines(ex))
    return "$$\\begin{aligned}\n" + body + "\n\\end{aligned}$$"
