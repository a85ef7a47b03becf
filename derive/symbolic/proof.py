"""The proof ladder: show claim - derived == 0, cheapest method first.

Rungs, in order: structural zero; rational normal form with the named intermediates kept
opaque (sound: an identity in free symbols stays one after substitution); the same after
writing intermediates in the variables and applying the domains' equalities; logs expanded
and exp(z) replaced by positive symbols u, then rational normal form; `simplify` last.
Non-smooth functions (relu, abs, step) are split into their smooth pieces first, and the
proof then holds away from the kinks, which the result says.

This runs inside a killable worker (see `derive.bounded`): `simplify` has no time limit.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..bounded import stage
from .graph import NONSMOOTH, Graph

MAX_KINKS = 6


@dataclass(frozen=True)
class Proof:
    """Outcome for one claim: proved or not, the rungs used, and any kinks excluded."""

    proved: bool
    methods: tuple[str, ...] = ()
    kinks: tuple[str, ...] = ()
    detail: str = ""


def clearly_nonzero(e: sp.Expr) -> bool:
    """True when e, at a random point with positive rational coordinates, is far from 0.

    Only used to skip a rung that cannot succeed (a heuristic that never proves anything):
    the opaque-intermediate rungs treat intermediates as free symbols, and cancelling an
    expression that is not zero in them can take seconds.
    """
    rng = random.Random(len(e.free_symbols))
    point = {s: sp.Rational(rng.randint(1, 997), 503) for s in e.free_symbols}
    try:
        value = e.xreplace(point).evalf(30)
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return bool(value.is_Number and value.is_finite and abs(value) > 1e-12)


def rational_zero(e: sp.Expr) -> bool:
    """e == 0 as a rational function of its atoms: the numerator over a common denominator
    expands to 0. (No gcd is cancelled first: it cannot change whether the numerator is 0.)"""
    num, _ = sp.fraction(sp.together(e))
    return sp.expand(num) == 0


def exp_to_symbols(e: sp.Expr) -> sp.Expr:
    """exp(a*z + b*w + c) -> u_z**a * u_w**b * exp(c), with u positive symbols."""
    cache: dict[sp.Symbol, sp.Symbol] = {}

    def u(sym: sp.Symbol) -> sp.Symbol:
        if sym not in cache:
            cache[sym] = sp.Symbol(f"u_{sym.name}", positive=True)
        return cache[sym]

    def replace(arg: sp.Expr) -> sp.Expr:
        factors = []
        for term in sp.Add.make_args(sp.expand(arg)):
            coeff, rest = term.as_coeff_Mul()
            if isinstance(rest, sp.Symbol) and coeff.is_Rational:
                factors.append(u(rest) ** coeff)
            else:
                factors.append(sp.exp(term))
        return sp.Mul(*factors)

    return e.replace(lambda x: isinstance(x, sp.exp), lambda x: replace(x.args[0]))


def _smooth_zero(e: sp.Expr, simplify_ok: bool) -> str | None:
    """Name of the first rung that shows e == 0 (e has no kinks), else None."""
    if e == 0:
        return "structural (definitions substituted)"
    if rational_zero(e):
        return "rational normal form"
    logs = sp.expand_log(e, force=False)
    if rational_zero(exp_to_symbols(logs)):
        return "rational normal form after exp(z) -> u"
    rewritten = e.rewrite(sp.exp)
    if rewritten != e and rational_zero(exp_to_symbols(sp.expand_log(rewritten, force=False))):
        return "rational normal form after rewriting in exp"
    if clearly_nonzero(e):  # no rung can succeed; simplify could run for minutes
        return None
    if simplify_ok:
        stage("simplify")
        if sp.simplify(e) == 0:
            return "simplify"
    return None


def kink_args(e: sp.Expr) -> list[sp.Expr]:
    """The expressions whose sign selects a piece of e's non-smooth functions."""
    atoms = sorted(e.atoms(*NONSMOOTH), key=sp.default_sort_key)
    args: list[sp.Expr] = []
    for a in atoms:
        if isinstance(a, (sp.Max, sp.Min)) and len(a.args) == 2:
            args.append(a.args[0] - a.args[1])
        elif isinstance(a, (sp.Abs, sp.Heaviside, sp.sign)):
            args.append(a.args[0])
        elif isinstance(a, sp.Piecewise):
            for _, cond in a.args:
                if isinstance(cond, sp.core.relational.Relational):
                    args.append(cond.lhs - cond.rhs)
    # x and -x are the same kink: keep one sign of each
    return list(dict.fromkeys(-a if a.could_extract_minus_sign() else a for a in args))


def _under_signs(e: sp.Expr, args: list[sp.Expr], signs: tuple[int, ...]) -> sp.Expr | None:
    """e with every kink atom replaced by its piece where sign(args[i]) == signs[i]."""
    sign_of = dict(zip(args, signs))

    def s(arg: sp.Expr) -> int | None:
        if arg in sign_of:
            return sign_of[arg]
        if -arg in sign_of:
            return -sign_of[-arg]
        return None

    def piece(atom: sp.Expr) -> sp.Expr:
        if isinstance(atom, (sp.Max, sp.Min)):
            a, b = atom.args
            sg = s(a - b)
            if sg is None:
                raise LookupError
            bigger = a if sg > 0 else b
            smaller = b if sg > 0 else a
            return bigger if isinstance(atom, sp.Max) else smaller
        if isinstance(atom, sp.Abs):
            sg = s(atom.args[0])
            return sg * atom.args[0]
        if isinstance(atom, sp.Heaviside):
            return sp.Integer(1 if s(atom.args[0]) > 0 else 0)
        if isinstance(atom, sp.sign):
            return sp.Integer(s(atom.args[0]))
        if isinstance(atom, sp.Piecewise):
            for value, cond in atom.args:
                if cond is sp.true:
                    return value
                sg = s(cond.lhs - cond.rhs)
                if sg is None:
                    raise LookupError
                holds = {sp.StrictGreaterThan: sg > 0, sp.GreaterThan: sg > 0,
                         sp.StrictLessThan: sg < 0, sp.LessThan: sg < 0}.get(type(cond))
                if holds is None:
                    raise LookupError
                if holds:
                    return value
            raise LookupError
        raise LookupError

    try:
        for _ in range(8):  # nested kinks resolve from the inside out
            atoms = e.atoms(*NONSMOOTH)
            if not atoms:
                return e
            e = e.xreplace({a: piece(a) for a in atoms if not a.atoms(*NONSMOOTH) - {a}})
    except (LookupError, TypeError):
        return None
    return None


def prove_zero(e: sp.Expr, graph: Graph, *, simplify_ok: bool = True) -> Proof:
    """Try to show that `e` (an entry of claim - derived, in named intermediates) is 0."""
    if e == 0:
        return Proof(True, ("structural",))
    full = e.xreplace(graph.expanded)
    full = full.xreplace(graph.constraints) if graph.constraints else full
    if full == 0:  # cheap, and it spares the opaque rungs' costly zero test on big sums
        return Proof(True, ("structural (definitions substituted)",))
    smooth = not e.atoms(*NONSMOOTH)
    if smooth and not clearly_nonzero(e) and rational_zero(e):
        return Proof(True, ("rational normal form (intermediates opaque)",))
    if smooth:
        partial = e.xreplace(graph.elementwise)
        if (partial != e and not clearly_nonzero(partial)
                and rational_zero(exp_to_symbols(sp.expand_log(partial, force=False)))):
            return Proof(True, ("rational normal form (activations expanded, sums opaque)",))
    args = kink_args(full)
    if not args:
        method = _smooth_zero(full, simplify_ok)
        return Proof(method is not None, (method,) if method else ())
    if len(args) > MAX_KINKS:
        return Proof(False, detail=f"{len(args)} kinks: too many sign cases to split")
    methods = []
    for signs in itertools.product((1, -1), repeat=len(args)):
        piece = _under_signs(full, args, signs)
        if piece is None:
            return Proof(False, detail="could not split the non-smooth functions into pieces")
        method = _smooth_zero(piece, simplify_ok)
        if method is None:
            return Proof(False, detail=f"not shown zero where signs of {args} are {signs}")
        methods.append(method)
    kinks = tuple(f"{a} = 0" for a in args)
    return Proof(True, tuple(dict.fromkeys(methods)), kinks)


def prove_claim(diff: np.ndarray, graph: Graph, *, simplify_ok: bool = True) -> Proof:
    """Prove every entry of claim - derived; stop at the first entry that resists."""
    stage("proof")
    methods: list[str] = []
    kinks: list[str] = []
    for idx, e in np.ndenumerate(diff):
        p = prove_zero(sp.sympify(e), graph, simplify_ok=simplify_ok)
        stage("proof")
        if not p.proved:
            where = f"entry {idx}" if idx else "the scalar claim"
            return Proof(False, detail=p.detail or f"claim - derived at {where} not shown zero")
        methods += p.methods
        kinks += p.kinks
    return Proof(True, tuple(dict.fromkeys(methods)), tuple(dict.fromkeys(kinks)))
