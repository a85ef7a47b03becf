"""Formula strings to derive.ops calls, through an AST whitelist: user text is never evaluated.

`parse_formula("s * (1 - s)", names={"x", "s"})` returns a `ParsedFormula`: a callable of a
namespace of symbols (the same thing a catalog lambda receives) that builds the expression
with `derive.ops`. The text is read with `ast.parse` only; every node is checked against a
small grammar (names, numbers, + - * / ** @, unary - +, calls of known functions, `.T`) and
translated to a tree of our own, so neither `eval`, `exec`, `sympify`, `parse_expr` nor
`lambdify` ever sees it. Everything that could be expensive is bounded before anything is
built: the length of the text, the nesting depth and node count of its tree, the digits and
exponents of its numbers (read from the text, before Python converts them), the size of
every constant it computes, every exponent, and the size of every expression it writes out.

Errors are `ParseError`s with one-line messages `where:line:col: what was wrong; what is
allowed`, the column pointing into the file the formula came from.
"""

from __future__ import annotations

import ast
import difflib
import io
import tokenize
import unicodedata
import warnings
from fractions import Fraction
from typing import Collection, Mapping

import sympy as sp

from ..errors import ParseError
from .evaluate import ParsedFormula, _digits
from .functions import ALIASES, CONSTANTS, FUNCTIONS, NOT_SUPPORTED, Param
from .tree import (
    _BINARY,
    ALLOWED,
    MAX_CHARS,
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_EXPONENT,
    MAX_LOG10,
    MAX_NODES,
    MAX_POWER,
    SYMPY_CONSTANTS,
    _Binary,
    _Call,
    _Compare,
    _Const,
    _Node,
    _Ref,
    _SizeRef,
    _Transpose,
    _Unary,
)

_OPERATOR_WORDS = {ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>",
                   ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.Not: "not", ast.Invert: "~"}
_NODE_WORDS = {
    ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator expression",
    ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
    ast.BoolOp: "'and'/'or'", ast.IfExp: "a conditional expression", ast.NamedExpr: "':=' (walrus)",
    ast.Subscript: "indexing (x[...])", ast.Starred: "'*' unpacking", ast.Dict: "a dict",
    ast.Set: "a set", ast.List: "a list", ast.Tuple: "a tuple", ast.Slice: "a slice",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
}
_SKIP = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_COMPARE_WORDS = {ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
                  ast.NotIn: "not in"}


class _Locator:
    """Positions within the formula turned into positions within its file."""

    def __init__(self, where: str, line: int, col: int, context: str) -> None:
        self.where, self.line, self.col, self.context = where or "<formula>", line, col, context

    def at(self, lineno: int, col_offset: int) -> tuple[int, int]:
        """1-based formula line, 0-based column -> file line and column."""
        if lineno <= 1:
            return self.line, self.col + col_offset
        return self.line + lineno - 1, col_offset + 1

    def error(self, pos: tuple[int, int], what: str, allowed: str = ALLOWED) -> ParseError:
        line, col = pos
        ctx = f"{self.context}: " if self.context else ""
        msg = f"{self.where}:{line}:{col}: {ctx}{what}"
        if allowed:
            msg += f"; {allowed}"
        return ParseError(" ".join(msg.split()), where=self.where, line=line, col=col)


def parse_formula(text: str, *, names: Collection[str], where: str = "", line: int = 1, col: int = 1,
                  sizes: Mapping[str, tuple[str, int]] | None = None,
                  context: str = "") -> ParsedFormula:
    """Read `text` into a formula over the declared `names`.

    `where`, `line`, `col` place the formula in its file (for messages); `sizes` maps size
    names usable in the formula (n, B, k) to the (variable, axis) that has that length;
    `context` (e.g. "identity 'x': claim d/dx") prefixes every message.
    """
    loc = _Locator(where, line, col, context)
    if not isinstance(text, str):
        raise loc.error((line, col), f"a formula must be a string, got {type(text).__name__}",
                        "write it in quotes, e.g. \"s * (1 - s)\"")
    if len(text) > MAX_CHARS:
        raise loc.error((line, col), f"formula is {len(text)} characters long",
                        f"formulas may have at most {MAX_CHARS}; name parts of it as intermediates")
    if not text.strip():
        raise loc.error((line, col), "formula is empty", "write an expression such as \"s * (1 - s)\"")
    _check_characters(text, loc)
    _check_numbers(text, loc)
    try:
        with warnings.catch_warnings():  # Python's own warnings ("invalid decimal literal") are
            warnings.simplefilter("ignore")  # not the user's one line: its errors are
            tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        pos = loc.at(exc.lineno or 1, max((exc.offset or 1) - 1, 0))
        raise loc.error(pos, f"cannot read the formula ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise loc.error((line, col), f"cannot read the formula ({type(exc).__name__})") from None
    _check_size(tree, loc)
    declared = frozenset(names)
    builder = _Builder(loc, declared, dict(sizes or {}), text)
    root = builder.node(tree.body)
    return ParsedFormula(text, frozenset(builder.used), root, loc.where, context)


def _check_characters(text: str, loc: _Locator) -> None:
    for lineno, row in enumerate(text.split("\n"), start=1):
        for offset, ch in enumerate(row):
            if ch.isascii() and (ch.isprintable() or ch in "\t\r"):
                continue
            hint = {"\u2212": "write '-'", "\u00b7": "write '*'", "\u00d7": "write '*'",
                    "\u03c3": "write sigmoid(x)", "\u2211": "write sum(x)"}.get(ch, "use ASCII only")
            name = unicodedata.name(ch, f"U+{ord(ch):04X}")
            raise loc.error(loc.at(lineno, offset), f"character {ch!r} ({name}) is not allowed",
                            f"{hint}; formulas are written in ASCII")


def _check_numbers(text: str, loc: _Locator) -> None:
    """Refuse literals that are huge or odd before Python (or SymPy) converts them."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    try:
        for tok in tokens:
            if tok.type != tokenize.NUMBER:
                continue
            s = tok.string.replace("_", "").lower()
            pos = loc.at(tok.start[0], tok.start[1])
            if s.endswith("j"):
                raise loc.error(pos, f"complex number {tok.string!r} is not allowed", "use real numbers")
            if s[:2] in ("0x", "0o", "0b"):
                raise loc.error(pos, f"number {tok.string!r} is not decimal", "write numbers in decimal")
            mantissa, _, exponent = s.partition("e")
            digits = sum(c.isdigit() for c in mantissa)
            if digits > MAX_DIGITS:
                raise loc.error(pos, f"number with {digits} digits is too long",
                                f"numbers may have at most {MAX_DIGITS} digits")
            exp_digits = exponent.lstrip("+-").lstrip("0")
            if len(exp_digits) > 3 or (exp_digits and int(exp_digits) > MAX_EXPONENT):
                raise loc.error(pos, f"number {tok.string[:40]!r} has too large an exponent",
                                f"exponents may be at most {MAX_EXPONENT} in size (e.g. 1e-12)")
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return  # ast.parse reports the syntax error with its position


def _check_size(tree: ast.AST, loc: _Locator) -> None:
    """Node count and depth, walked without recursion."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _SKIP):
            continue
        count += 1
        pos = loc.at(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))
        if depth > MAX_DEPTH:
            raise loc.error(pos, f"formula is nested more than {MAX_DEPTH} levels deep",
                            "name parts of it as intermediates")
        if count > MAX_NODES:
            raise loc.error(pos, f"formula has more than {MAX_NODES} parts",
                            "name parts of it as intermediates")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _close(name: str, choices: Collection[str]) -> list[str]:
    return difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.6)


class _Builder:
    """Whitelisted AST -> our tree, folding constants exactly with bounded sizes."""

    def __init__(self, loc: _Locator, names: frozenset[str], sizes: dict[str, tuple[str, int]],
                 text: str) -> None:
        self.loc, self.names, self.sizes, self.text = loc, names, sizes, text
        self.used: set[str] = set()
        self.matrix_depth = 0

    def pos(self, node: ast.AST) -> tuple[int, int]:
        return self.loc.at(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))

    def error(self, node: ast.AST, what: str, allowed: str = ALLOWED) -> ParseError:
        return self.loc.error(self.pos(node), what, allowed)

    def node(self, node: ast.AST) -> _Node:
        line, col = self.pos(node)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise self.error(node, f"operator '{_OPERATOR_WORDS.get(type(node.op), '?')}' is not allowed")
            operand = self.node(node.operand)
            op = "-" if isinstance(node.op, ast.USub) else "+"
            if isinstance(operand, _Const):
                return _Const(line, col, -operand.value if op == "-" else operand.value,
                              digits=operand.digits)
            return _Unary(line, col, op, operand, digits=operand.digits)
        if isinstance(node, ast.BinOp):
            return self.binary(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Attribute):
            operand = self.node(node.value)  # the innermost problem is reported first
            # the column of '.attr' itself: just after the operand
            end = self.loc.at(node.value.end_lineno or 1, node.value.end_col_offset or 0)
            if node.attr != "T":
                raise self.loc.error(end, f"attribute '.{node.attr}' is not allowed",
                                     "the only attribute is '.T' (transpose), e.g. A.T @ x")
            return _Transpose(*end, operand, digits=operand.digits)
        word = _NODE_WORDS.get(type(node), type(node).__name__)
        raise self.error(node, f"{word} is not allowed in a formula")

    def constant(self, node: ast.Constant) -> _Const:
        line, col = self.pos(node)
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise self.error(node, f"{value!r} is not allowed", "use numbers such as 0, 1, 0.5")
        if isinstance(value, (str, bytes)):
            raise self.error(node, f"a {'string' if isinstance(value, str) else 'bytes'} literal is "
                             "not allowed", "formulas contain names and numbers, not quoted text")
        if isinstance(value, complex):
            raise self.error(node, "complex numbers are not allowed", "use real numbers")
        if isinstance(value, int):
            number = sp.Integer(value)
        elif isinstance(value, float):
            segment = ast.get_source_segment(self.text, node) or repr(value)
            frac = Fraction(segment.replace("_", ""))  # exact: 0.1 is 1/10, not a binary float
            number = sp.Rational(frac.numerator, frac.denominator)
        else:
            raise self.error(node, f"constant {type(value).__name__} is not allowed", "use numbers")
        return _Const(line, col, number, digits=_digits(number))

    def name(self, node: ast.Name) -> _Node:
        line, col = self.pos(node)
        ident = node.id
        if ident in self.names:
            self.used.add(ident)
            return _Ref(line, col, ident)
        if ident in self.sizes:
            var, axis = self.sizes[ident]
            self.used.add(var)
            return _SizeRef(line, col, ident, var, axis)
        if ident in CONSTANTS:  # pi, e: a declared variable of that name wins (above)
            return _Const(line, col, CONSTANTS[ident], digits=1.0)
        known = sorted(self.names | set(self.sizes))
        listing = f"declared names: {', '.join(known)}" if known else "nothing is declared"
        if ident in FUNCTIONS:
            raise self.error(node, f"'{ident}' is a function, used here without arguments",
                             f"call it, e.g. {ident}(x)")
        if ident in SYMPY_CONSTANTS:
            raise self.error(node, f"unknown name '{ident}' (SymPy constants are not implied)",
                             f"{listing}; write the number or declare '{ident}' as a variable")
        close = _close(ident, known)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else listing
        if close:
            hint += f" ({listing})"
        raise self.error(node, f"unknown name '{ident}'", hint)

    def binary(self, node: ast.BinOp) -> _Node:
        line, col = self.pos(node)
        kind = _BINARY.get(type(node.op))
        if kind is None:
            raise self.error(node, f"operator '{_OPERATOR_WORDS.get(type(node.op), '?')}' is not allowed")
        op, fn = kind
        left = self.node(node.left)
        right = self.node(node.right)
        if op == "**":
            return self.power(node, left, right)
        if op == "/" and isinstance(right, _Const) and right.value == 0:
            raise self.error(node.right, "division by zero", "divide by a nonzero number or expression")
        digits = (max(left.digits, right.digits) + 1 if op in "+-"
                  else left.digits + right.digits)
        self.bound(node, digits)
        if isinstance(left, _Const) and isinstance(right, _Const) and op != "@":
            return _Const(line, col, fn(left.value, right.value), digits=digits)
        return _Binary(line, col, op, left, right, digits=digits)

    def power(self, node: ast.BinOp, base: _Node, exponent: _Node) -> _Node:
        line, col = self.pos(node)
        allowed = (f"'**' takes a constant exponent: an integer or a fraction with |value| <= "
                   f"{MAX_POWER}, e.g. x**2, x**-1, x**(1/2); write pow(x, y) for a variable exponent")
        if (not isinstance(exponent, _Const) and isinstance(base, _Const) and base.value.is_positive
                and base.value.is_real):  # e**x, 2**x: a positive constant to any power
            return _Binary(line, col, "**", base, exponent, digits=base.digits + exponent.digits + 1)
        if not isinstance(exponent, _Const) or not exponent.value.is_Rational:
            raise self.error(node.right, "the exponent is not a constant number", allowed)
        e = exponent.value
        if abs(e) > MAX_POWER or e.q > MAX_POWER:
            raise self.error(node.right, f"exponent {e} is too large", allowed)
        if isinstance(base, _Const) and base.value == 0 and e < 0:
            raise self.error(node, "0 to a negative power (division by zero)", allowed)
        digits = float(abs(e)) * max(base.digits, 1.0) + 1
        self.bound(node, digits)
        if isinstance(base, _Const):
            return _Const(line, col, base.value ** e, digits=digits)
        return _Binary(line, col, "**", base, exponent, digits=digits)

    def bound(self, node: ast.AST, digits: float) -> None:
        if digits > MAX_LOG10:
            raise self.error(node, f"this computes a number with up to {digits:.3g} digits",
                             f"constants may have at most {MAX_LOG10:g} digits")

    def compare(self, node: ast.Compare) -> _Node:
        line, col = self.pos(node)
        ops_: list[str] = []
        for op in node.ops:
            word = _COMPARE.get(type(op))
            if word is None:
                shown = _COMPARE_WORDS.get(type(op), "?")
                raise self.error(node, f"comparison '{shown}' is not allowed",
                                 "use < <= > >= (equality of real numbers holds on a set of measure "
                                 "zero: no sample lands there), e.g. where(x > 0, x, 0)")
            ops_.append(word)
        operands = tuple(self.node(n) for n in (node.left, *node.comparators))
        digits = max(o.digits for o in operands) + 1
        return _Compare(line, col, tuple(ops_), operands, digits=digits)

    def unknown_function(self, node: ast.Call, fname: str) -> ParseError:
        if fname in self.names or fname in self.sizes:
            return self.error(node, f"'{fname}' is a declared name, not a function",
                              f"write {fname} * (...) to multiply; functions: {', '.join(FUNCTIONS)}")
        if fname in NOT_SUPPORTED:
            return self.error(node.func, f"unknown function '{fname}'", NOT_SUPPORTED[fname])
        close = _close(fname, FUNCTIONS)[:2]
        alias = ALIASES.get(fname) or ALIASES.get(fname.lower())
        if alias is not None:
            close = [alias] + [c for c in close if c != alias][:1]
        hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                else f"functions: {', '.join(FUNCTIONS)}")
        return self.error(node.func, f"unknown function '{fname}'", hint)

    def call(self, node: ast.Call) -> _Node:
        line, col = self.pos(node)
        if not isinstance(node.func, ast.Name):
            raise self.error(node, "only functions called by name are allowed (e.g. exp(x))",
                             f"functions: {', '.join(FUNCTIONS)}")
        fname = node.func.id
        spec = FUNCTIONS.get(fname)
        if spec is None:
            raise self.unknown_function(node, fname)
        usage = f"write {spec.signature(fname)}"
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.error(arg, "'*' unpacking is not allowed", "pass arguments one by one")
        lead = [p for p in spec.params if p.lead]
        trail = [p for p in spec.params if not p.lead and p.positional]
        positional = list(node.args)
        params: dict[str, object] = {}
        if lead and len(positional) < len(lead) + spec.fewest:
            most = spec.arity + len(lead)
            raise self.error(node, f"{fname} takes {most} arguments, got {len(positional)}", usage)
        for p in lead:  # polygamma(n, x): its number parameter comes first
            if not positional:
                break
            params[p.name] = self.param(positional.pop(0), p, fname, usage)
        count = len(positional)
        extra = count - spec.arity
        if extra > 0 and extra <= len(trail):
            for p, value in zip(trail, positional[spec.arity:]):
                params[p.name] = self.param(value, p, fname, usage)
            positional = positional[: spec.arity]
        elif extra > 0 or count < spec.fewest or (lead and len(params) < len(lead)):
            total = count + len(params)
            most = spec.arity + len(lead) + len(trail)
            fewest = spec.fewest + sum(p.required for p in spec.params if p.lead or p.positional)
            takes = (f"{most} argument{'s' if most != 1 else ''}" if most == fewest
                     else f"{fewest} to {most} arguments")
            raise self.error(node, f"{fname} takes {takes}, got {total}", usage)
        axis: int | None = spec.default_axis
        keywords = {p.name: p for p in spec.params}
        for kw in node.keywords:
            if kw.arg is None:
                raise self.error(kw.value, "'**' unpacking is not allowed",
                                 f"name each keyword; {usage}")
            if kw.arg == "axis" and spec.axis:
                axis = self.axis(kw.value)
                continue
            p = keywords.get(kw.arg)
            if p is None:
                known = [*(["axis"] if spec.axis else []), *keywords]
                takes = (f"its keywords are {', '.join(k + '=' for k in known)}; {usage}" if known
                         else f"{fname} takes no keywords; {usage}")
                raise self.error(kw.value, f"keyword '{kw.arg}' is not allowed for {fname}", takes)
            if p.name in params:
                raise self.error(kw.value, f"{fname} got {p.name} twice", usage)
            params[p.name] = self.param(kw.value, p, fname, usage)
        for p in spec.params:
            if p.name not in params:
                if p.required:
                    raise self.error(node, f"{fname} needs {p.name}", usage)
                params[p.name] = p.default
        if spec.matrix:
            if self.matrix_depth:
                raise self.error(node, f"{fname} inside another matrix function (det, inv, solve...) "
                                 "is not allowed",
                                 "name the inner result as an intermediate (define = ...) first")
            self.matrix_depth += 1
        try:
            args = tuple(self.node(a) for a in positional)
        finally:
            if spec.matrix:
                self.matrix_depth -= 1
        digits = sum(a.digits for a in args) + (8.0 if spec.matrix else 4.0)
        self.bound(node, digits)
        return _Call(line, col, fname, args, axis, tuple(params.items()),
                     tuple(self.pos(a) for a in positional), digits=digits)

    def param(self, value: ast.AST, p: Param, fname: str, usage: str) -> object:
        """A parameter's value: a number (or a word from a short list) written in the text."""
        allowed = f"{fname}'s {p.describe()}; {usage}"
        if p.kind == "choice":
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value in p.choices:
                return value.value
            raise self.error(value, f"{p.name} must be one of {', '.join(repr(c) for c in p.choices)}",
                             allowed)
        if p.kind == "bool":
            if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                return value.value
            raise self.error(value, f"{p.name} must be True or False", allowed)
        sign, inner = 1, value
        if isinstance(inner, ast.UnaryOp) and isinstance(inner.op, (ast.USub, ast.UAdd)):
            sign = -1 if isinstance(inner.op, ast.USub) else 1
            inner = inner.operand
        if p.kind == "ord" and isinstance(inner, ast.Name) and inner.id == "inf":
            return sign * float("inf")
        if not (isinstance(inner, ast.Constant) and isinstance(inner.value, (int, float))
                and not isinstance(inner.value, bool)):
            raise self.error(value, f"{p.name} must be a number written out (not a formula)", allowed)
        number = self.constant(inner).value * sign
        if p.kind == "int" and not number.is_Integer:
            raise self.error(value, f"{p.name} must be an integer, got {number}", allowed)
        if p.kind == "ord":
            if not number > 0:
                raise self.error(value, f"ord must be positive (or inf, -inf), got {number}", allowed)
            if number > 64:
                raise self.error(value, f"ord {number} is too large", "use ord=inf for the largest entry")
            return number
        low_ok = number > p.low if p.open_low else number >= p.low
        if not (low_ok and number <= p.high):
            raise self.error(value, f"{p.name}={number} is out of range", allowed)
        return int(number) if p.kind == "int" else number

    def axis(self, value: ast.AST) -> int:
        sign = 1
        inner = value
        if isinstance(inner, ast.UnaryOp) and isinstance(inner.op, ast.USub):
            sign, inner = -1, inner.operand
        if (isinstance(inner, ast.Constant) and isinstance(inner.value, int)
                and not isinstance(inner.value, bool) and inner.value <= 8):
            return sign * inner.value
        raise self.error(value, "axis must be a small integer", "e.g. axis=0, axis=1 or axis=-1")


__all__ = ["FUNCTIONS", "ParsedFormula", "parse_formula", "MAX_CHARS", "MAX_DEPTH", "MAX_NODES"]
