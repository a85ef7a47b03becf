r"""Fitting a display formula to a width: an estimate of its width, and breaks where it is too wide.

LaTeX cannot break a display formula, so the breaks are chosen here, from a parse of the
LaTeX the printer wrote and an estimate of its width in points (11pt Computer Modern).
Breaks go before a top-level + - = (continuation lines start with the operator), then
between the factors of a product (the next line starts with \times); a part still too wide
is opened: \left( ... \right) becomes \biggl( ... \biggr) (sized delimiters need no partner
on the same line), {...} its content, a fraction too wide 1/D (N) or N (D)^{-1}, a square
root (...)^{1/2}; what still cannot fit is scaled down (\resizebox). Strings in, strings out:
`derive.present.latex` lays a derivation's rows out with `tex_width` and `_broken`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

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
