"""Derivations typeset: an align* fragment, GitHub Markdown, or a standalone LaTeX document.

Presentation only: it renders a `derive.explain.Explanation` (and, where given, the verdict
of `derive.check`). Notation follows the textbooks: O_k for a node's entry at its index,
delta_k for the adjoint of a pre-activation, sigma for the sigmoid, delta_ij for Kronecker.
"""

from __future__ import annotations

from typing import Any, Iterable

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ..symbolic.explain import ClaimExplanation, Explanation
from ..model.indexed import bound_key
from ..model.verdict import Result

FORMATS = ("tex", "markdown", "standalone")
_SUM_LETTERS = "klmpqrsuvabcdefgh"
_GREEK = {"delta": r"\delta", "sigma": r"\sigma", "alpha": r"\alpha", "beta": r"\beta",
          "gamma": r"\gamma", "lambda": r"\lambda", "mu": r"\mu", "theta": r"\theta", "eta": r"\eta"}


def _head(name: str) -> tuple[str, str]:
    """'W_jk' -> ('W', 'jk'); 'y_hat' -> (r'\\hat{y}', ''); 'delta^{(x)}' -> (r'\\delta^{(x)}', '')."""
    sup = ""
    if "^" in name:
        name, sup = name.split("^", 1)
        sup = "^" + sup
    base, _, suffix = name.partition("_")
    head = _GREEK.get(base, base if len(base) == 1 else rf"\mathrm{{{base}}}")
    if suffix == "hat":
        return rf"\hat{{{head}}}{sup}", ""
    return head + sup, suffix


def _subscript(parts: list[str]) -> str:
    joined = "".join(parts) if all(len(p) == 1 for p in parts) else ",".join(parts)
    return f"_{{{joined}}}" if joined else ""


class DerivePrinter(LatexPrinter):
    """SymPy's LaTeX printer with textbook names: O_{k}, W_{jk}, \\delta_{k}, \\sum_{k}."""

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        head, _ = _head(str(expr.base.label))
        return head + _subscript([self._print(i) for i in expr.indices])

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        head, suffix = _head(expr.name)
        return head + _subscript([suffix]) if suffix else head

    _print_Dummy = _print_Symbol

    def _print_Sum(self, expr: sp.Sum) -> str:
        body = self._print(expr.function)
        if isinstance(expr.function, sp.Add):
            body = rf"\left({body}\right)"
        return "".join(rf"\sum_{{{self._print(v)}}} " for v, _, _ in reversed(expr.limits)) + body

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta, exp: Any = None) -> str:
        out = r"\delta" + _subscript([self._print(a) for a in expr.args])
        return f"{out}^{{{exp}}}" if exp else out

    def _print_Function(self, expr: Any, exp: Any = None) -> str:
        if expr.func.__name__ == "sigma":
            out = rf"\sigma\left({self._print(expr.args[0])}\right)"
            return f"{out}^{{{exp}}}" if exp else out
        return super()._print_Function(expr, exp)


_sigma = sp.Function("sigma")


def _readable(e: Any, taken: set[str], letters_for: dict[Any, str] | None = None) -> Any:
    """Sigmoids written as sigma(x); summation indices renamed: to the letter the graph uses
    for that range (sum over J -> j) when it is free, else to an unused letter."""
    e = sp.sympify(e)
    e = e.replace(lambda x: isinstance(x, sp.Pow) and x.exp == -1 and isinstance(x.base, sp.Add)
                  and len(x.base.args) == 2 and 1 in x.base.args
                  and any(isinstance(a, sp.exp) for a in x.base.args),
                  lambda x: _sigma(-next(a for a in x.base.args if isinstance(a, sp.exp)).args[0]))
    used = taken | {str(s) for s in e.free_symbols}
    letters = iter(c for c in _SUM_LETTERS if c not in used and c not in (letters_for or {}).values())
    names: dict[sp.Symbol, sp.Symbol] = {}
    # a total order that is the same in every process (a set's order follows string hashes)
    for s in sorted(e.atoms(sp.Sum), key=lambda x: (sp.count_ops(x), bound_key(x))):
        inside = {str(x) for x in s.function.free_symbols}
        for var, _, hi in s.limits:
            if var in names:
                continue
            want = (letters_for or {}).get(hi + 1)
            if want is None or want in used or want in inside or want in {str(v) for v in names.values()}:
                want = next(letters, f"s{len(names)}")
            names[var] = sp.Symbol(want, integer=True)
    return e.xreplace(names) if names else e


def tex(e: Any, taken: Iterable[str] = (), letters_for: dict[Any, str] | None = None) -> str:
    """LaTeX of one expression in the house notation."""
    return DerivePrinter({"mul_symbol": None}).doprint(_readable(e, set(taken), letters_for))


def _partial(top: str, bottom: str) -> str:
    return rf"\frac{{\partial {top}}}{{\partial {bottom}}}"


_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "^": r"\^{}", "~": r"\~{}",
            "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$"}


def escape(s: str) -> str:
    """Plain text made safe for LaTeX's text mode."""
    return "".join(_SPECIAL.get(c, c) for c in s)


def _text(s: str) -> str:
    return r"\text{" + escape(s) + "}"


def derivation_lines(ex: Explanation) -> list[str]:
    """The lines of the align* environment (each ends without the trailing \\\\)."""
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

    lines = []
    for st in ex.steps:
        if st.kind == "define":
            lines.append(f"{at(st.node)} &= {show(st.expr)}")
    for claim in ex.claims:
        lines.extend(_claim_lines(ex, claim, at, show))
    return lines


def _claim_lines(ex: Explanation, claim: ClaimExplanation, at: Any, show: Any) -> list[str]:
    g = ex.graph
    lines = []
    target = at(g.target)
    if claim.wrt is None:
        lines.append(rf"{target} &= {show(claim.claimed)} && {_text('claimed value')}")
    else:
        chain = [_partial(at(a), at(b)) for a, b in zip(claim.path, claim.path[1:])]
        free = {str(i) for i in (*g.nodes[g.target].index, *g.nodes[claim.wrt].index)}
        summed = sorted({str(i) for n in claim.path[1:-1] for i in g.nodes[n].index} - free)
        sums = "".join(rf"\sum_{{{s}}} " for s in summed)
        if len(chain) > 1:
            lines.append(rf"{_partial(target, at(claim.wrt))} &= {sums}{' '.join(chain)} && {_text('chain rule')}")
        shown: set[tuple[str, str]] = set()
        for a, b in zip(claim.path, claim.path[1:]):
            for st in ex.steps:
                if st.kind == "local" and (st.node, st.parent) == (a, b) and (a, b) not in shown:
                    shown.add((a, b))
                    raw = f"{show(st.raw)} = " if st.raw is not None else ""
                    lines.append(rf"{_partial(at(a), at(b))} &= {raw}{show(st.expr)} && {_text(st.note)}")
            for st in ex.steps:
                if st.kind == "delta" and st.node == b and (b, "delta") not in shown:
                    shown.add((b, "delta"))
                    delta = show(_delta(ex, b))
                    lines.append(rf"{delta} &:= {_partial(target, at(b))} = {show(st.expr)}"
                                 rf" && {_text('names the adjoint')}")
        lines.append(rf"{_partial(target, at(claim.wrt))} &= {show(claim.derived)}")
        lines.append(rf"&{_text('claimed: ')} {show(claim.claimed)}")
    verdict = (f"claimed - derived = 0 ({claim.method})" if claim.proved
               else "claimed - derived not shown to be 0")
    scope = " for every size" if ex.for_every_n and claim.proved else ""
    lines.append(rf"&{_text(verdict + scope)}")
    return lines


def _delta(ex: Explanation, name: str) -> Any:
    return next(st.raw for st in ex.steps if st.kind == "delta" and st.node == name)


def render_tex(ex: Explanation) -> str:
    """An align* fragment, ready to paste into a paper."""
    body = " \\\\\n".join(f"  {line}" for line in derivation_lines(ex))
    return f"% {ex.name}: {ex.description}\n\\begin{{align*}}\n{body}\n\\end{{align*}}\n"


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
    out = [f"## `{ex.name}`", "", ex.description, ""]
    if result is not None:
        out += [_evidence(result), ""]
    out += ["$$", r"\begin{aligned}", math, r"\end{aligned}", "$$", ""]
    if ex.source:
        out += [f"Source: {ex.source}", ""]
    return "\n".join(out)


PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[margin=2cm]{geometry}
\usepackage{amsmath,amssymb}
\allowdisplaybreaks
\title{%s}
\date{}
\begin{document}
\maketitle
"""


def render_standalone(explanations: list[Explanation], results: dict[str, Result] | None = None,
                      title: str = "derive: derivations") -> str:
    """A complete LaTeX document (amsmath): a section per family, a subsection per identity."""
    parts = [PREAMBLE % escape(title)]
    family = None
    for ex in explanations:
        if len(explanations) > 1 and ex.family != family:
            family = ex.family
            heading = family.upper() if len(family) <= 3 else family.capitalize()
            parts.append(f"\\section{{{escape(heading or 'Identities')}}}\n")
        parts.append(f"\\subsection*{{\\texttt{{{escape(ex.name)}}}}}\n{escape(ex.description)}\n")
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
