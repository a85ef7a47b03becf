"""Derivations typeset: an align* fragment, GitHub Markdown, or a standalone LaTeX document.

Presentation only: it renders a `derive.symbolic.explain.Explanation` (and, where given, the
verdict of `derive.check`). Notation follows the textbooks: O_k for a node's entry at its index,
delta_k for the adjoint of a pre-activation, sigma for the sigmoid, delta_ij for Kronecker.
The LaTeX is fitted to the page: wide formulas are broken, wide matrices written entry by
entry, notes set as tags (see `layout`). Catalog descriptions are LaTeX (text with $...$ math);
anyone else's are plain text, escaped.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
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
        if "_" in suffix:  # grad_z_dot_v: z, dot, v (a subscript cannot hold a bare _)
            return head + _subscript([p if len(p) == 1 else rf"\mathrm{{{p}}}" for p in suffix.split("_") if p])
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

    def _bracket(self, expr: Any, left: str, right: str, exp: Any = None) -> str:
        out = rf"\left{left}{self._print(expr.args[0])}\right{right}"
        return f"{out}^{{{exp}}}" if exp else out

    def _print_Floor(self, expr: Any, exp: Any = None) -> str:  # derive.ops.floor
        return self._bracket(expr, r"\lfloor ", r"\rfloor", exp)

    def _print_Ceil(self, expr: Any, exp: Any = None) -> str:
        return self._bracket(expr, r"\lceil ", r"\rceil", exp)

    def _print_Round(self, expr: Any, exp: Any = None) -> str:  # nearest integer
        return self._bracket(expr, r"\lfloor ", r"\rceil", exp)

    def _print_Trunc(self, expr: Any, exp: Any = None) -> str:
        return rf"\operatorname{{trunc}}{self._bracket(expr, '(', ')', exp)}"

    def _print_Sign(self, expr: Any, exp: Any = None) -> str:
        return rf"\operatorname{{sgn}}{self._bracket(expr, '(', ')', exp)}"

    def _print_loggamma(self, expr: Any, exp: Any = None) -> str:  # lgamma
        out = rf"\ln\Gamma\left({self._print(expr.args[0])}\right)"
        return rf"\left({out}\right)^{{{exp}}}" if exp else out

    def _print_polygamma(self, expr: Any, exp: Any = None) -> str:  # digamma, polygamma
        n, x = expr.args
        head = r"\psi" if n == 0 else rf"\psi^{{({self._print(n)})}}"
        out = rf"{head}\left({self._print(x)}\right)"
        return rf"\left({out}\right)^{{{exp}}}" if exp else out

    def _print_atan2(self, expr: Any, exp: Any = None) -> str:
        out = rf"\operatorname{{atan2}}\left({self._print(expr.args[0])}, {self._print(expr.args[1])}\right)"
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
            "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "<": r"\textless{}",
            ">": r"\textgreater{}"}


def escape(s: str) -> str:
    """Plain text made safe for LaTeX's text mode."""
    return "".join(_SPECIAL.get(c, c) for c in s)


def _text(s: str) -> str:
    return r"\text{" + escape(s) + "}"


# --- fitting the page: an estimate of each formula's width, and breaks where it is too wide ---
#
# LaTeX cannot break a display formula, so the breaks are chosen here, from a parse of the
# LaTeX the printer wrote and an estimate of its width in points (11pt Computer Modern).
# Breaks go before a top-level + - = (continuation lines start with the operator), then
# between the factors of a product (the next line starts with \times); a part still too wide
# is opened: \left( ... \right) becomes \biggl( ... \biggr) (sized delimiters need no partner
# on the same line), {...} its content, a fraction too wide 1/D (N) or N (D)^{-1}, a square
# root (...)^{1/2}. A matrix too wide is written entry by entry. Rule notes and verdicts are
# \tag*s: amsmath sets a tag on a line of its own when the formula leaves it no room.

_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|\d+(?:\.\d+)?|\s+|.", re.DOTALL)
_BIN = {"+", "-", r"\cdot", r"\times", r"\pm", r"\mp", r"\odot", r"\otimes", r"\circ", r"\oplus", "*"}
_REL = {"=", "<", ">", ":", r"\leq", r"\geq", r"\le", r"\ge", r"\neq", r"\approx", r"\to", r"\in",
        r"\equiv", r"\sim", r"\mapsto", r"\rightarrow", r"\propto"}
_BIGOP = {r"\sum": (14.6, 10.6), r"\prod": (13.0, 9.5), r"\int": (9.5, 6.0), r"\bigcup": (12.0, 9.0)}
_SPACE = {r"\,": 1.8, r"\:": 2.4, r"\>": 2.4, r"\;": 3.1, r"\ ": 3.7, "~": 3.7, r"\quad": 11.0,
          r"\qquad": 22.0, r"\!": -1.8}
_RAW_ARG = {r"\text": 5.1, r"\textrm": 5.1, r"\mathrm": 5.4, r"\operatorname": 5.4, r"\mathbb": 7.6,
            r"\mathbf": 6.6, r"\mathit": 5.6, r"\mathcal": 7.5, r"\textbf": 6.0, r"\textit": 5.0,
            r"\mathsf": 5.4, r"\texttt": 5.8}
_ACCENT = {r"\hat", r"\bar", r"\tilde", r"\vec", r"\dot", r"\ddot", r"\overline", r"\widehat",
           r"\widetilde", r"\boldsymbol", r"\underline"}
_NAMED = re.compile(r"\\(log|ln|exp|sin|cos|tan|sinh|cosh|tanh|det|max|min|sup|inf|arg|lim|sec|"
                    r"csc|cot|arcsin|arccos|arctan|sgn|tr|Pr)\Z")
_SIZE = (1.0, 1.0, 0.76, 0.6)    # display, text, script, scriptscript (8pt and 6pt fonts are wider)
_FRAC = (1, 2, 3, 3)             # the style of a fraction's parts
_SCRIPT = (2, 2, 3, 3)           # the style of sub- and superscripts


@dataclass
class _Node:
    """One parsed piece of a formula: its source text, what it is, and its parts."""

    kind: str  # ord bin rel open close space bigop group frac delim script env sqrt
    src: str
    w: float = 0.0                   # an atom's width in points at full size
    kids: list[_Node] = field(default_factory=list)
    parts: list[list[_Node]] = field(default_factory=list)  # frac: num, den; script: sub, sup
    rows: list[list[list[_Node]]] = field(default_factory=list)  # env: rows of cells
    opn: str = ""                    # delim: the delimiters; script: the scripts' source
    cls: str = ""
    base: _Node | None = None        # script: what the scripts are on
    spaced: bool = True              # written after a space: a product, where a line may break
    memo: dict[int, float] = field(default_factory=dict, compare=False, repr=False)  # width by style


class _Unparsed(Exception):
    pass


class _Parser:
    """A parser for the LaTeX SymPy's printer writes (and similar): enough structure to find
    where a formula can be broken and to estimate widths; anything else is one opaque atom."""

    def __init__(self, tex: str) -> None:
        self.tex = tex
        self.toks = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(tex)]
        self.i = 0
        self.end = 0  # where the last token taken ends

    def peek(self) -> str | None:
        while self.i < len(self.toks) and self.toks[self.i][0].isspace():
            self.i += 1
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, int, int]:
        if self.peek() is None:
            raise _Unparsed("unexpected end")
        tok = self.toks[self.i]
        self.i += 1
        self.end = tok[2]
        return tok

    def pos(self) -> int:
        self.peek()
        return self.toks[self.i][1] if self.i < len(self.toks) else len(self.tex)

    def raw_group(self) -> str:
        """The text of a {...} argument, braces balanced, spaces kept."""
        if self.take()[0] != "{":
            raise _Unparsed("expected {")
        depth, out = 1, []
        while self.i < len(self.toks):
            t = self.toks[self.i][0]
            self.end = self.toks[self.i][2]
            self.i += 1
            depth += (t == "{") - (t == "}")
            if depth == 0:
                return "".join(out)
            out.append(t)
        raise _Unparsed("unclosed {")

    def seq(self, stops: set[str]) -> list[_Node]:
        out: list[_Node] = []
        while (t := self.peek()) is not None and t not in stops:
            if t == "}" or t in (r"\right", r"\end"):
                raise _Unparsed(f"unexpected {t}")
            out.append(self.scripted())
        return out

    def arg(self) -> list[_Node]:
        if self.peek() == "{":
            self.take()
            kids = self.seq({"}"})
            self.take()
            return kids
        return [self.atom()]

    def scripted(self) -> _Node:
        start = self.pos()
        spaced = start > 0 and self.tex[start - 1].isspace()
        node = self.scripted_atom(start)
        node.spaced = spaced
        return node

    def scripted_atom(self, start: int) -> _Node:
        node = self.atom()
        sub: list[_Node] = []
        sup: list[_Node] = []
        extra = ""
        while self.peek() in ("^", "_", "'"):
            t = self.take()[0]
            mark = self.pos()
            if t == "'":
                sup.append(_Node("ord", "'", 2.8))
                extra += "'"
                continue
            got = self.arg()
            (sup if t == "^" else sub).extend(got)
            extra += t + self.tex[mark:self.end]
        if not sub and not sup:
            return node
        return _Node("script", self.tex[start:self.end], parts=[sub, sup], base=node, opn=extra)

    def atom(self) -> _Node:
        t, start, _ = self.take()
        if t == "{":
            kids = self.seq({"}"})
            self.take()
            return _Node("group", self.tex[start:self.end], kids=kids)
        if t in (r"\frac", r"\dfrac", r"\tfrac"):
            num, den = self.arg(), self.arg()
            return _Node("frac", self.tex[start:self.end], parts=[num, den])
        if t == r"\left":
            opn = self.take()[0]
            kids = self.seq({r"\right"})
            self.take()
            cls = self.take()[0]
            return _Node("delim", self.tex[start:self.end], kids=kids, opn=opn, cls=cls)
        if t == r"\begin":
            name = self.raw_group()
            if self.peek() == "{":  # array's column spec
                self.raw_group()
            rows: list[list[list[_Node]]] = [[]]
            while True:
                rows[-1].append(self.seq({"&", r"\\", r"\end"}))
                sep = self.take()[0]
                if sep == r"\end":
                    if self.raw_group() != name:
                        raise _Unparsed("mismatched \\end")
                    break
                if sep == r"\\":
                    rows.append([])
            return _Node("env", self.tex[start:self.end], rows=rows, opn=name)
        if t == r"\sqrt":
            if self.peek() == "[":
                while self.take()[0] != "]":
                    pass
            kids = self.arg()
            return _Node("sqrt", self.tex[start:self.end], kids=kids)
        if t in _RAW_ARG:
            text = re.sub(r"\\[A-Za-z]+|[{}\\]", "x", self.raw_group())
            w = sum(_RAW_ARG[t] * (1.45 if c.isupper() else 1.0 if c.isalnum() else 0.7) for c in text)
            return _Node("ord", self.tex[start:self.end], w + (1.8 if t == r"\operatorname" else 0.0))
        if t in _ACCENT:
            kids = self.arg()
            return _Node("group", self.tex[start:self.end], kids=kids)
        if t in _BIGOP:
            return _Node("bigop", t, _BIGOP[t][0])
        if t in _BIN:
            return _Node("bin", t, 3.1 if t in (r"\cdot", r"\circ") else 8.6)
        if t in _REL:
            return _Node("rel", t, 8.6 if t not in (":",) else 3.1)
        if t in _SPACE:
            return _Node("space", t, _SPACE[t])
        if t in ("(", "[", r"\{", r"\lbrace", r"\langle"):
            return _Node("open", t, 4.3)
        if t in (")", "]", r"\}", r"\rbrace", r"\rangle"):
            return _Node("close", t, 4.3)
        if t in ("}", "&", r"\\", r"\right", r"\end", "^", "_"):
            raise _Unparsed(f"unexpected {t}")
        if _NAMED.match(t):
            return _Node("ord", t, 5.3 * (len(t) - 1) + 1.8)
        if t.startswith("\\"):
            return _Node("ord", t, 11.0 if t in (r"\infty", r"\cdots", r"\ldots", r"\dots") else 6.4)
        if t[0].isdigit():
            return _Node("ord", t, 5.5 * sum(c.isdigit() for c in t) + 3.1 * ("." in t))
        if t.isalpha():
            return _Node("ord", t, 8.3 if t.isupper() else 5.8)
        if t == ",":
            return _Node("ord", t, 4.9)  # a comma and the thin space after it
        return _Node("ord", t, 3.1 if t in ".;!|/'" else 6.0)


def _parse(tex: str) -> list[_Node]:
    """The formula as a list of nodes; an unreadable one as a single opaque atom."""
    try:
        p = _Parser(tex)
        out = p.seq(set())
        if p.peek() is not None:
            raise _Unparsed("trailing")
        return out
    except _Unparsed:
        return [_Node("ord", tex, 5.8 * len(re.sub(r"\\[A-Za-z]+|[{}^_\s]", "x", tex)))]


def _height(nodes: Iterable[_Node], style: int = 0) -> int:
    """How tall: 0 plain, 1 with scripts, 2 a fraction or a display sum, 3 taller still."""
    h = 0
    for n in nodes:
        if n.kind == "frac":
            inner = max(_height(p, _FRAC[style]) for p in n.parts)
            h = max(h, (2 + (inner >= 2)) if style <= 1 else 1)
        elif n.kind == "env":
            h = max(h, 3 if len(n.rows) > 1 else 1)
        elif n.kind == "script":
            h = max(h, 2 if n.base is not None and n.base.kind == "bigop" and style == 0 else 1,
                    _height([n.base] if n.base else [], style))
        elif n.kind in ("group", "delim", "sqrt"):
            h = max(h, _height(n.kids, style))
        elif n.kind == "bigop" and style == 0:
            h = max(h, 2)
    return min(h, 3)


def _running(nodes: Sequence[_Node], style: int = 0) -> list[float]:
    """The estimated width in points (11pt) of nodes[:i], for every i: one pass."""
    f, total, prev = _SIZE[style], 0.0, None
    out = [0.0]
    for n in nodes:
        if n.kind == "bin":
            unary = prev is None or prev.kind in ("bin", "rel", "open")
            total += n.w * f + (0 if unary or style > 1 else 4.9)
        elif n.kind == "rel":
            total += n.w * f + (0 if style > 1 or (prev is not None and prev.kind == "rel") else 6.1)
        else:
            total += _node_width(n, style)
        prev = n
        out.append(total)
    return out


def _width(nodes: Sequence[_Node], style: int = 0) -> float:
    """Estimated width in points (11pt), erring wide."""
    return _running(nodes, style)[-1]


def _delim_width(d: str, h: int, f: float) -> float:
    return 1.2 if d == "." else (4.3, 5.2, 7.4, 8.8)[h] * f + (1.5 if d in (r"\{", r"\}", "|") else 0)


def _node_width(n: _Node, style: int) -> float:
    if style not in n.memo:
        n.memo[style] = _measure(n, style)
    return n.memo[style]


def _measure(n: _Node, style: int) -> float:
    f = _SIZE[style]
    if n.kind in ("ord", "open", "close", "space"):
        return n.w * f
    if n.kind == "bigop":
        return _BIGOP.get(n.src, (n.w, n.w))[style != 0] * f + 1.8
    if n.kind == "group":
        return _width(n.kids, style)
    if n.kind == "frac":
        return max(_width(p, _FRAC[style]) for p in n.parts) + 2.4 * f
    if n.kind == "delim":
        h = _height(n.kids, style)
        return _width(n.kids, style) + _delim_width(n.opn, h, f) + _delim_width(n.cls, h, f)
    if n.kind == "sqrt":
        return _width(n.kids, style) + 9.0 * f
    if n.kind == "script":
        base = n.base or _Node("ord", "", 0.0)
        scripts = max((_width(p, _SCRIPT[style]) for p in n.parts if p), default=0.0) + 0.6
        if base.kind == "bigop" and style == 0:
            return max(_node_width(base, style), scripts)
        return _node_width(base, style) + scripts
    if n.kind == "env":
        cells = [[_width(c, 1) for c in row] for row in n.rows]
        cols = max(len(r) for r in cells)
        widths = [max((r[k] for r in cells if k < len(r)), default=0.0) for k in range(cols)]
        sep = 11.0 if n.opn == "cases" else 10.0
        return sum(widths) + sep * (cols - 1) + (10.0 if n.opn in ("cases", "pmatrix", "bmatrix") else 0)
    return n.w * f


def tex_width(tex: str) -> float:
    """An estimate, in points at 11pt, of how wide `tex` sets in display style."""
    return _width(_parse(tex))


_SIZED = ("", r"\big", r"\bigg", r"\Bigg")


def _sized(d: str, side: str, h: int) -> _Node:
    if d == ".":
        return _Node("space", "", 0.0)
    src = f"{_SIZED[h]}{side}{d}" if h else d
    return _Node("open" if side == "l" else "close", src, _delim_width(d, h, 1.0))


def _opened(n: _Node) -> list[_Node] | None:
    """`n` written so that a line may break inside it, or None where it cannot be."""
    out = _opening(n)
    if out:  # a break before it is allowed where one before n was (not between f and its (x))
        out[0] = dataclasses.replace(out[0], spaced=n.spaced)
    return out


def _opening(n: _Node) -> list[_Node] | None:
    if n.kind == "group":
        return list(n.kids)
    if n.kind == "delim":
        h = _height(n.kids)
        return [_sized(n.opn, "l", h), *n.kids, _sized(n.cls, "r", h)]
    if n.kind == "sqrt":
        h = _height(n.kids)
        return [_sized("(", "l", h), *n.kids, _script(_sized(")", "r", h), "^{1/2}")]
    if n.kind == "script" and n.base is not None and n.base.src == "e" and n.parts[1] and not n.parts[0]:
        h = _height(n.parts[1])  # e^{...} too wide: exp(...)
        return [_Node("ord", r"\exp", 5.3 * 3 + 1.8), _sized("(", "l", h), *n.parts[1], _sized(")", "r", h)]
    if n.kind == "script" and n.base is not None and n.base.kind in ("delim", "sqrt"):
        inner = _opened(n.base)
        if inner is None:
            return None
        return [*inner[:-1], _script(inner[-1], n.opn)]
    if n.kind == "frac":
        num, den = n.parts
        h = max(_height(num), _height(den))
        if _width(num, 1) >= _width(den, 1):
            return [_Node("frac", rf"\frac{{1}}{{{_src(den)}}}", parts=[[_Node("ord", "1", 5.5)], den]),
                    _sized("(", "l", h), *num, _sized(")", "r", h)]
        lead = num if len(num) == 1 or not any(k.kind in ("bin", "rel") for k in num) else \
            [_sized("(", "l", h), *num, _sized(")", "r", h)]
        return [*lead, _sized("(", "l", h), *den, _script(_sized(")", "r", h), "^{-1}")]
    return None


def _script(base: _Node, scripts: str) -> _Node:
    sup = _parse(scripts.lstrip("^_").strip("{}"))
    return _Node("script", base.src + scripts, parts=[[], sup], base=base, opn=scripts)


def _src(nodes: Sequence[_Node]) -> str:
    return " ".join(n.src for n in nodes if n.src)


def _breaks(seq: Sequence[_Node]) -> tuple[list[int], list[int]]:
    """Where a line may end: before a binary operator or relation at this level, and (worse)
    between two factors."""
    ops, factors = [], []
    for i in range(1, len(seq)):
        a, b = seq[i - 1], seq[i]
        if b.kind in ("bin", "rel") and a.kind not in ("bin", "rel", "open"):
            ops.append(i)
        elif (b.spaced and a.kind not in ("bin", "rel", "open", "space", "bigop")
              and b.kind not in ("bin", "rel", "close", "space")
              and not (a.kind == "script" and a.base is not None and a.base.kind == "bigop")):
            factors.append(i)
    return ops, factors


def _fill(seq: list[_Node], first: float, rest: float) -> list[list[_Node]]:
    """`seq` cut into lines no wider than `first` (the first line) and `rest`, as far as it can be."""
    lines: list[list[_Node]] = []
    budget = first
    for _ in range(100_000):
        run = _running(seq)
        if run[-1] <= budget:
            break
        ops, factors = _breaks(seq)
        lo = 2 if seq and seq[0].kind in ("bin", "rel") else 1
        cut = _longest(run, ops, lo, budget)
        times = False
        if cut is None:
            cut = _longest(run, factors, lo, budget)
            times = cut is not None
        if cut is None:
            opened = _open_widest(seq, run, budget, ops)
            if opened is not None:
                seq = opened
                continue
            cut = min((i for i in ops + factors if i >= lo), default=None)  # too wide all the same
            if cut is None:
                break
            times = cut not in ops
        lines.append(seq[:cut])
        seq = ([_Node("bin", r"\times", 8.6)] if times else []) + seq[cut:]
        budget = rest
    lines.append(seq)
    return lines


def _longest(run: list[float], cuts: list[int], lo: int, budget: float) -> int | None:
    """The last of `cuts` (from `lo` on) before which the line fits `budget` (`run`: the
    widths of its prefixes)."""
    return max((i for i in cuts if i >= lo and run[i] <= budget), default=None)


def _open_widest(seq: list[_Node], run: list[float], budget: float, ops: list[int]) -> list[_Node] | None:
    """`seq` with the widest node that can be opened, in the part that overflows, opened."""
    k = next((i for i in range(len(seq)) if run[i + 1] > budget), len(seq) - 1)
    lo = max((i for i in ops if i <= k), default=0)
    hi = min((i for i in ops if i > k), default=len(seq))
    for span in (range(lo, hi), range(hi)):
        best = max(span, key=lambda i: (_opened(seq[i]) is not None, _node_width(seq[i], 0)), default=None)
        if best is not None and (inner := _opened(seq[best])) is not None:
            return seq[:best] + inner + seq[best + 1:]
    return None


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


_OVER = 1.15  # a line estimated this much wider than its room cannot be broken: it is scaled down


def _broken(head: str, text: str, first: float, rest: float) -> list[str]:
    """`head` and `text` as lines: the first `first` points wide, the rest `rest` and indented.
    What no break can fit (a long exponent, a wide matrix inside a formula) is scaled down to
    fit (graphicx's \\resizebox)."""
    parts = _fill(_parse(text), first, rest)
    if len(parts) == 1 and _width(parts[0]) <= _OVER * first:
        return [head + text]
    lines = []
    for k, part in enumerate(parts):
        room = first if k == 0 else rest
        lead = part[:1] if k and part and part[0].kind in ("bin", "rel") else []
        body = part[len(lead):]
        shown = _src(body)
        if _width(body) > _OVER * room:
            shown = rf"\resizebox{{{room - _width(lead):.0f}pt}}{{!}}{{$\displaystyle {shown}$}}"
        shown = f"{{}} {_src(lead)} {shown}" if lead else shown
        lines.append(head + shown if k == 0 else rf"&\qquad {shown}")
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
