"""The table of stable rewrites people use (log(1 + exp x) -> softplus x, 1 - sigmoid(x) ->
sigmoid(-x), ...): each rule's two sides on argument symbols, and the matcher that finds an
instance of its left side in a formula. Proved and applied by `derive.symbolic.rewrites`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp

from .marks import Library, expm1, hypot, log1p, log_softmax, logaddexp, logsumexp, sigmoid, softmax, softplus


@dataclass(frozen=True)
class Rule:
    """A rewrite people use: `before` -> `after`, both written on argument symbols.

    `match(e)` returns the arguments when e is an instance of `lhs` (plus `rest`, the other
    terms or factors of a sum or product that holds it), else None. `needs` names the formula
    functions the rewritten form uses: a rule whose functions a formula cannot call is off."""

    name: str
    before: str
    after: str
    lhs: Callable[..., sp.Expr]
    rhs: Callable[..., sp.Expr]
    match: Callable[[sp.Expr], "Matched | None"]
    needs: tuple[str, ...] = ()
    stability: bool = True
    """False for algebra that simplifies but does not itself stabilise (softplus(-u) -> ...)."""


@dataclass(frozen=True)
class Matched:
    args: tuple[sp.Expr, ...]
    rest: tuple[sp.Expr, ...] = ()


def _terms(e: sp.Expr) -> list[sp.Expr]:
    return list(e.args) if isinstance(e, sp.Add) else [e]


def _is_exp(e: sp.Expr) -> bool:
    return isinstance(e, sp.exp)


def _exp_sum(e: sp.Expr) -> tuple[sp.Expr, ...] | None:
    """The exponents b when e = sum_k exp(b_k) (two terms at least; exp(0) = 1 counts)."""
    if not isinstance(e, sp.Add) or not any(_is_exp(t) for t in e.args):
        return None
    out = []
    for t in e.args:
        if _is_exp(t):
            out.append(t.args[0])
        elif t == 1:
            out.append(sp.S.Zero)
        else:
            return None
    return tuple(out)


def _split(e: sp.Expr, wanted: list[sp.Expr]) -> tuple[sp.Expr, ...] | None:
    """The other terms of the sum e when every term in `wanted` is among its terms."""
    terms = _terms(e)
    if not all(w in terms for w in wanted):
        return None
    rest = list(terms)
    for w in wanted:
        rest.remove(w)
    return tuple(rest)


def _m_softplus(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.Add) and len(e.args[0].args) == 2:
        a, b = e.args[0].args
        for one, ex in ((a, b), (b, a)):
            if one == 1 and _is_exp(ex):
                return Matched((ex.args[0],))
    return None


def _m_one_minus(cls: type[Library]) -> Callable[[sp.Expr], Matched | None]:
    def match(e: sp.Expr) -> Matched | None:
        if not isinstance(e, sp.Add):
            return None
        for t in e.args:
            if isinstance(-t, cls):
                rest = _split(e, [sp.S.One, t])
                if rest is not None:
                    return Matched((-t).args, rest)
        return None
    return match


def _m_log_of(cls: type[Library]) -> Callable[[sp.Expr], Matched | None]:
    def match(e: sp.Expr) -> Matched | None:
        if isinstance(e, sp.log) and isinstance(e.args[0], cls):
            return Matched(e.args[0].args)
        return None
    return match


def _m_log_one_minus_sigmoid(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.Add):
        m = _m_one_minus(sigmoid)(e.args[0])
        if m is not None and not m.rest:
            return m
    return None


def _fraction_of_exps(e: sp.Expr, power: int = 1) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...], tuple[sp.Expr, ...]] | None:
    """(a,), (b_1..b_n), other factors when e = exp(a)^c / (sum_k exp(b_k))^c * others, a
    among b (c = `power`; SymPy writes exp(a)^2 as exp(2 a))."""
    if not isinstance(e, sp.Mul):
        return None
    factors = list(e.args)
    for den in factors:
        if isinstance(den, sp.Pow) and den.exp == -power:
            b = _exp_sum(den.base)
            if b is None:
                continue
            for num in factors:
                if _is_exp(num) and num.args[0] / power in b:
                    rest = [f for f in factors if f is not num and f is not den]
                    return (num.args[0] / power,), b, tuple(rest)
    return None


def _m_softmax_power(e: sp.Expr) -> Matched | None:
    for c in (2, 3):
        found = _fraction_of_exps(e, c)
        if found is not None and len(found[1]) >= 2:
            (a,), b, rest = found
            return Matched((sp.Integer(c), a, *b), rest)
    return None


def _m_softmax(e: sp.Expr) -> Matched | None:
    found = _fraction_of_exps(e)
    if found is None:
        return None
    (a,), b, rest = found
    if len(b) < 2:
        return None
    return Matched((a, *b), rest)


def _softmax_rhs(a: sp.Expr, *b: sp.Expr) -> sp.Expr:
    if len(b) == 2:  # a two-way softmax is a sigmoid of the difference
        other = b[1] if b[0] == a else b[0]
        return sigmoid(a - other)
    return softmax(a, *b)


def _softmax_lhs(a: sp.Expr, *b: sp.Expr) -> sp.Expr:
    return sp.exp(a) / sp.Add(*(sp.exp(x) for x in b))


def _m_logsumexp(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.log):
        b = _exp_sum(e.args[0])
        if b is not None and len(b) >= 2 and sp.S.Zero not in b:
            return Matched(b)
    return None


def _logsumexp_rhs(*b: sp.Expr) -> sp.Expr:
    return logaddexp(*b) if len(b) == 2 else logsumexp(*b)


def _m_log_softmax(e: sp.Expr) -> Matched | None:
    if not isinstance(e, sp.log):
        return None
    inner = e.args[0]
    if isinstance(inner, softmax):
        return Matched(inner.args)
    found = _fraction_of_exps(inner)
    if found is not None and not found[2] and len(found[1]) >= 3:
        return Matched((found[0][0], *found[1]))
    return None


def _m_logistic(e: sp.Expr) -> Matched | None:
    """exp(u) / (1 + exp(u)) and 1 / (1 + exp(-u)): a sigmoid written out."""
    if isinstance(e, sp.Pow) and e.exp == -1:
        b = _exp_sum(e.base)
        if b is not None and len(b) == 2 and sp.S.Zero in b:
            return Matched((-(b[0] + b[1]),))
    found = _fraction_of_exps(e)
    if found is not None and len(found[1]) == 2 and sp.S.Zero in found[1] and found[0][0] != 0:
        return Matched(found[0], found[2])
    return None


def _m_log1p(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.Add):
        rest = _split(e.args[0], [sp.S.One])
        if rest:
            u = sp.Add(*rest)
            if not _is_exp(u):
                return Matched((u,))
    return None


def _m_expm1(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.Add):
        for t in e.args:
            if _is_exp(t):
                rest = _split(e, [t, sp.S.NegativeOne])
                if rest is not None:
                    return Matched(t.args, rest)
    return None


def _m_hypot(power: sp.Expr) -> Callable[[sp.Expr], Matched | None]:
    def match(e: sp.Expr) -> Matched | None:
        if isinstance(e, sp.Pow) and e.exp == power and isinstance(e.base, sp.Add) and len(e.base.args) == 2:
            a, b = e.base.args
            if all(isinstance(t, sp.Pow) and t.exp == 2 for t in (a, b)):
                return Matched((a.base, b.base))
        return None
    return match


def _m_squares(e: sp.Expr) -> Matched | None:
    if not isinstance(e, sp.Add):
        return None
    squares = [t for t in e.args if isinstance(t, sp.Pow) and t.exp == 2]
    negated = [t for t in e.args if isinstance(-t, sp.Pow) and (-t).exp == 2]
    for a in squares:
        for nb in negated:
            rest = _split(e, [a, nb])
            if rest is not None:
                return Matched((a.base, (-nb).base), rest)
    return None


def _m_one_minus_tanh2(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.Add):
        for t in e.args:
            sq = -t
            if isinstance(sq, sp.Pow) and sq.exp == 2 and isinstance(sq.base, sp.tanh):
                rest = _split(e, [sp.S.One, t])
                if rest is not None:
                    return Matched(sq.base.args, rest)
    return None


def _m_softplus_negative(e: sp.Expr) -> Matched | None:
    if isinstance(e, softplus) and e.args[0].could_extract_minus_sign():
        return Matched((-e.args[0],))
    return None


RULES: tuple[Rule, ...] = (
    Rule("softplus", "log(1 + exp(x))", "softplus(x)",
         lambda u: sp.log(1 + sp.exp(u)), lambda u: softplus(u), _m_softplus, ("softplus",)),
    Rule("log_sigmoid", "log(sigmoid(x))", "-softplus(-x)",
         lambda u: sp.log(sigmoid(u)), lambda u: -softplus(-u), _m_log_of(sigmoid), ("softplus",)),
    Rule("log_one_minus_sigmoid", "log(1 - sigmoid(x))", "-softplus(x)",
         lambda u: sp.log(1 - sigmoid(u)), lambda u: -softplus(u), _m_log_one_minus_sigmoid, ("softplus",)),
    Rule("one_minus_sigmoid", "1 - sigmoid(x)", "sigmoid(-x)",
         lambda u: 1 - sigmoid(u), lambda u: sigmoid(-u), _m_one_minus(sigmoid), ("sigmoid",)),
    Rule("log_softmax", "log(softmax(z))", "log_softmax(z)",
         lambda a, *b: sp.log(softmax(a, *b)), lambda a, *b: log_softmax(a, *b), _m_log_softmax,
         ("log_softmax",)),
    Rule("softmax", "exp(z) / sum(exp(z))", "softmax(z) (shifted by max z)",
         _softmax_lhs, _softmax_rhs, _m_softmax, ("softmax", "sigmoid")),
    Rule("softmax_power", "exp(z)**c / sum(exp(z))**c", "softmax(z)**c",
         lambda c, a, *b: _softmax_lhs(a, *b) ** c, lambda c, a, *b: _softmax_rhs(a, *b) ** c,
         _m_softmax_power, ("softmax", "sigmoid")),
    Rule("logsumexp", "log(sum(exp(z)))", "logsumexp(z) (shifted by max z)",
         lambda *b: sp.log(sp.Add(*(sp.exp(x) for x in b))), _logsumexp_rhs, _m_logsumexp,
         ("logsumexp", "logaddexp")),
    Rule("sigmoid", "exp(x) / (1 + exp(x))", "sigmoid(x)",
         lambda u: sp.exp(u) / (1 + sp.exp(u)), lambda u: sigmoid(u), _m_logistic, ("sigmoid",)),
    Rule("hypot", "sqrt(x**2 + y**2)", "hypot(x, y)",
         lambda a, b: sp.sqrt(a**2 + b**2), lambda a, b: hypot(a, b), _m_hypot(sp.S.Half), ("hypot",)),
    Rule("inverse_hypot", "1/sqrt(x**2 + y**2)", "1/hypot(x, y)",
         lambda a, b: 1 / sp.sqrt(a**2 + b**2), lambda a, b: 1 / hypot(a, b), _m_hypot(-sp.S.Half), ("hypot",)),
    Rule("log1p", "log(1 + x)", "log1p(x)",
         lambda u: sp.log(1 + u), lambda u: log1p(u), _m_log1p, ("log1p",)),
    Rule("expm1", "exp(x) - 1", "expm1(x)",
         lambda u: sp.exp(u) - 1, lambda u: expm1(u), _m_expm1, ("expm1",)),
    Rule("one_minus_tanh_squared", "1 - tanh(x)**2", "1/cosh(x)**2",
         lambda u: 1 - sp.tanh(u) ** 2, lambda u: 1 / sp.cosh(u) ** 2, _m_one_minus_tanh2, ("cosh",)),
    Rule("difference_of_squares", "a**2 - b**2", "(a - b)*(a + b)",
         lambda a, b: a**2 - b**2, lambda a, b: (a - b) * (a + b), _m_squares),
    Rule("softplus_reflection", "softplus(-x)", "softplus(x) - x",
         lambda u: softplus(-u), lambda u: softplus(u) - u, _m_softplus_negative, ("softplus",),
         stability=False),
)
"""The rewrite table, most specific first (log(1 - sigmoid) before 1 - sigmoid)."""


__all__ = ["Rule", "Matched", "RULES"]
