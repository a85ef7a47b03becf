"""Stable rewrites applied to formulas and proved.

`RULES` (`derive.symbolic.rules`) is the table of rewrites people use (log(1 + exp x) ->
softplus x, 1 - sigmoid(x) -> sigmoid(-x), ...). Each rule is proved once, on fresh symbols, by
the same ladder that proves claims (`derive.symbolic.proof.prove_zero`); replacing a
subexpression by an equal one gives an equal formula, so a rewrite made of proved rules (and of
algebra that the ladder's rational normal form shows) is proved. Nothing here is numeric:
derive.numeric.stability measures.

The formulas rewritten are the formulas as written, library calls marked (`derive.symbolic.written`,
`derive.symbolic.marks`); their names are importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from .graph import Graph
from .marks import (LIBRARY, FormulaPrinter, Library, expm1, formula_text, hypot, log1p, log_sigmoid, log_softmax,
                    logaddexp, logsumexp, sigmoid, softmax, softplus, unmark)
from .proof import prove_zero, rational_zero
from .rules import RULES, Matched, Rule
from .written import Written, written

def available(rule: Rule) -> bool:
    """Whether a formula can be written with the rule's result (its functions exist)."""
    from ..language.functions import FUNCTIONS

    return any(n in FUNCTIONS for n in rule.needs) if rule.needs else True


def _symbols(n: int) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(f"u{i}", real=True) for i in range(n))


_RULE_GRAPH = Graph("rewrite rule", {}, {}, "", ())


@lru_cache(maxsize=None)
def rule_proof(name: str, arity: int, power: int = 1) -> tuple[bool, tuple[str, ...]]:
    """The rule `name` with `arity` arguments proved on fresh real symbols by the proof ladder:
    (proved, the rungs that closed it). Cached: each rule is proved once per process."""
    rule = next(r for r in RULES if r.name == name)
    syms = _symbols(arity)
    if name == "softmax" or name == "log_softmax":  # the entry is one of the row's arguments
        lhs, rhs = rule.lhs(syms[1], *syms[1:]), rule.rhs(syms[1], *syms[1:])
    elif name == "softmax_power":  # (c, entry, *row): proved for c = 2 and c = 3 separately
        c = sp.Integer(power)
        lhs, rhs = rule.lhs(c, syms[2], *syms[2:]), rule.rhs(c, syms[2], *syms[2:])
    else:
        lhs, rhs = rule.lhs(*syms), rule.rhs(*syms)
    proof = prove_zero(unmark(lhs - rhs), _RULE_GRAPH)
    return proof.proved, proof.methods


def warm() -> None:
    """Prove every rule at the arities formulas usually need, once per process: a worker forked
    afterwards (a bounded stage, a pool task) finds them proved instead of proving them again."""
    for rule in RULES:
        if rule.name in ("softmax", "log_softmax", "softmax_power"):
            arities = [(n + 1 + (rule.name == "softmax_power"), c) for n in range(2, 6)
                       for c in ((2, 3) if rule.name == "softmax_power" else (1,))]
        elif rule.name == "logsumexp":
            arities = [(n, 1) for n in range(2, 6)]
        else:
            arities = [(_symbols_needed(rule), 1)]
        for arity, power in arities:
            rule_proof(rule.name, arity, power)


def _symbols_needed(rule: Rule) -> int:
    return rule.lhs.__code__.co_argcount or 1


@dataclass(frozen=True)
class Applied:
    """One use of a rule inside a formula: the subexpression `node` became `replacement`."""

    rule: str
    args: tuple[sp.Expr, ...]
    node: sp.Expr
    replacement: sp.Expr
    rest: tuple[sp.Expr, ...] = ()


def apply_at(rule: Rule, e: sp.Expr) -> Applied | None:
    """`rule` applied at the top of e, or None when it does not match there."""
    m = rule.match(e)
    if m is None:
        return None
    after = rule.rhs(*m.args)
    if m.rest:
        after = sp.Add(after, *m.rest) if isinstance(e, sp.Add) else sp.Mul(after, *m.rest)
    return Applied(rule.name, m.args, e, after, m.rest)


def rewrite_everywhere(e: sp.Expr, rules: tuple[Rule, ...], *, limit: int = 4) -> tuple[sp.Expr, list[Applied]]:
    """Every rule applied wherever it matches, innermost first, until nothing changes; the
    steps in the order they were taken (replaying them on e gives the result)."""
    used: list[Applied] = []
    memo: dict[sp.Expr, sp.Expr] = {}

    def walk(x: sp.Expr) -> sp.Expr:
        if x in memo:
            return memo[x]
        y = x.func(*(walk(a) for a in x.args)) if x.args else x
        for _ in range(limit):
            hit = next((h for r in rules if (h := apply_at(r, y)) is not None), None)
            if hit is None:
                break
            used.append(hit)
            y = hit.replacement
            y = y.func(*(walk(a) for a in y.args)) if y.args else y
        memo[x] = y
        return y

    return walk(e), used


def rewrite_at(e: sp.Expr, target: sp.Expr, rule: Rule) -> tuple[sp.Expr, Applied] | None:
    """e with its subexpression `target` rewritten by `rule` (every occurrence)."""
    hit = apply_at(rule, target)
    if hit is None:
        return None
    return e.xreplace({target: hit.replacement}), hit


def ancestors(e: sp.Expr, target: sp.Expr) -> list[sp.Expr]:
    """The subexpressions of e that contain `target`, innermost (target itself) first."""
    out: list[sp.Expr] = []

    def walk(x: sp.Expr) -> bool:
        if x == target:
            out.append(x)
            return True
        found = False
        for a in x.args:
            found = walk(a) or found
        if found and x not in out:
            out.append(x)
        return found

    walk(e)
    return out


@dataclass(frozen=True)
class Equality:
    """Whether a rewritten formula was proved equal to the original, and how."""

    proved: bool
    methods: tuple[str, ...] = ()
    detail: str = ""


def _schema_arity(step: Applied) -> int:
    return len(step.args)


def prove_rewrite(original: sp.Expr, rewritten: sp.Expr, steps: list[Applied]) -> Equality:
    """original == rewritten. Each step replaced a subexpression that is an instance of a rule's
    left side by the same instance of its right side; each rule is proved on fresh symbols by
    the proof ladder, so each step keeps the formula equal. Replaying the steps must give
    `rewritten`, up to algebra that the ladder's rational normal form shows with library calls
    as opaque atoms. Failing that, the ladder on the elementary forms decides."""
    methods: list[str] = []
    replay = original
    for step in steps:
        rule = next(r for r in RULES if r.name == step.rule)
        power = int(step.args[0]) if step.rule == "softmax_power" else 1
        ok, how = rule_proof(step.rule, _schema_arity(step), power)
        lhs = rule.lhs(*step.args)
        instance = (sp.Add(lhs, *step.rest) if isinstance(step.node, sp.Add) else sp.Mul(lhs, *step.rest)
                    ) if step.rest else lhs
        if not ok or instance != step.node:
            break
        methods.append(f"rule {step.rule}: {', '.join(how)}")
        replay = replay.xreplace({step.node: step.replacement})
    else:
        if replay == rewritten:
            return Equality(True, tuple(dict.fromkeys(methods)))
        if rational_zero(replay - rewritten):
            return Equality(True, tuple(dict.fromkeys(methods + ["rational normal form (library calls opaque)"])))
    proof = prove_zero(unmark(original - rewritten), _RULE_GRAPH, simplify_ok=False)
    if proof.proved:
        return Equality(True, proof.methods)
    return Equality(False, detail="the rewritten formula was not shown equal to the original")


__all__ = ["Library", "LIBRARY", "RULES", "Rule", "Matched", "Applied", "Equality", "Written",
           "written", "unmark", "available", "rule_proof", "apply_at", "rewrite_at",
           "rewrite_everywhere", "ancestors", "prove_rewrite", "formula_text", "FormulaPrinter",
           "warm", "sigmoid", "softplus", "log_sigmoid", "log1p", "expm1", "hypot", "logaddexp", "softmax",
           "log_softmax", "logsumexp"]
