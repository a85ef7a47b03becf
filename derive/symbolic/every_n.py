"""The derivation for every size n: adjoints in index notation, folded into the named nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..model.indexed import canonical
from .indexed_graph import IndexedGraph, INode
from .steps import Step

# --- derivation -----------------------------------------------------------------------------

def _collapse(e: sp.Expr, graph: IndexedGraph) -> sp.Expr:
    """Sum over s of KroneckerDelta(s, i) * f(s) -> f(i), for i a generic index of s's range.

    This is all the summation differentiation needs; SymPy's general `doit` also searches for
    closed forms of the sums that remain, which costs seconds and finds nothing here.
    """

    def hit(term: sp.Expr, var: sp.Symbol, lo: sp.Expr, hi: sp.Expr) -> sp.Expr | None:
        return next((d for d in sp.Mul.make_args(term) if isinstance(d, sp.KroneckerDelta)
                     and var in d.args and lo == 0 and graph.ranges.get(_other(d, var)) == hi + 1), None)

    def over(body: sp.Expr, limits: list[tuple[sp.Symbol, sp.Expr, sp.Expr]]) -> sp.Expr:
        if not limits:
            return body
        terms = sp.Add.make_args(sp.expand(body))
        for n, (var, lo, hi) in enumerate(limits):
            if any(hit(t, var, lo, hi) is not None for t in terms):
                break
        else:
            return sp.Sum(body, *limits)
        rest = limits[:n] + limits[n + 1:]
        done, kept = [], []
        for t in terms:
            d = hit(t, var, lo, hi)
            if d is None:
                kept.append(t)
            else:
                done.append((t / d).xreplace({var: _other(d, var)}))
        out = over(sp.Add(*done), rest)
        if kept:
            out += sp.Sum(over(sp.Add(*kept), rest), (var, lo, hi))
        return out

    return e.replace(lambda x: isinstance(x, sp.Sum), lambda x: over(x.function, list(x.limits)))


def _other(delta: sp.KroneckerDelta, var: sp.Symbol) -> sp.Expr:
    a, b = delta.args
    return b if a == var else a


def _tidy(e: sp.Expr, graph: IndexedGraph) -> sp.Expr:
    e = canonical(_collapse(sp.sympify(e), graph))
    if e.has(sp.Piecewise):
        e = sp.refine(e, graph.assumptions())
    return e


@dataclass(frozen=True)
class IndexedDerivation:
    """The derivative per claim (expanded, for the proof) and the steps a person would write."""

    derived: dict[int, sp.Expr]
    shown: dict[int, sp.Expr]  # the same in named deltas, for display
    steps: tuple[Step, ...]


def _feeds_activation(graph: IndexedGraph) -> set[str]:
    """Pre-activations: intermediates that are not themselves elementwise but feed one that
    is (x_k in O_k = sigma(x_k)). Their adjoints are the textbook deltas."""
    out = set()
    for node in graph.nodes.values():
        if node.formula is not None and _elementwise(node, graph):
            for p in node.parents:
                parent = graph.nodes[p]
                if parent.formula is not None and not _elementwise(parent, graph):
                    out.add(p)
    return out


def derive_indexed(graph: IndexedGraph, *, display: bool = True) -> IndexedDerivation:
    """Reverse accumulation with generic indices: the adjoint of a parent is the sum over the
    child's indices of child adjoint * local derivative. Pre-activation adjoints get named
    deltas, so the result reads as the textbook writes it (O_i delta_j). With display=False
    only `derived` is computed (what a proof needs): no steps, no folded display forms."""
    target = graph.nodes[graph.target]
    steps = [Step("define", n.name, canonical(n.entry(n.index)))
             for n in graph.nodes.values() if n.formula is not None] if display else []
    wanted = {c.wrt for c in graph.claims if c.wrt}
    depends: dict[str, set[str]] = {}
    for n in graph.nodes.values():
        depends[n.name] = {n.name} if n.formula is None else set().union(*(depends[p] for p in n.parents))
    # deltas are adjoints of a scalar loss; for a vector target the symbol would clash with
    # the Kronecker delta
    named = _feeds_activation(graph) - {target.name} if not target.shape else set()
    deltas = {name: _delta_symbol(graph.nodes[name], len(named)) for name in named}
    # the target's adjoint at its own (the claim's) indices is 1; deeper ones are summed over
    adjoint: dict[str, sp.Expr] = {target.name: sp.Integer(1)}
    shown: dict[str, sp.Expr] = {target.name: sp.Integer(1)}
    order = [n for n in graph.nodes.values() if n.formula is not None]
    order = order[: order.index(target) + 1]
    for node in reversed(order):
        if node.name not in adjoint:
            continue
        if node.name in named and display:
            steps.append(Step("delta", node.name, pretty(shown[node.name]), raw=deltas[node.name]))
        for pname in node.parents:
            if not depends[pname] & wanted:
                continue
            parent = graph.nodes[pname]
            if display:  # as written: at each node's own indices (x_k and O_k share k, as in the textbook)
                local = _tidy(sp.diff(node.entry(node.index), parent.at(parent.index)), graph)
                folded = fold(local, node, graph)
                steps.append(Step("local", node.name, folded, parent=pname, note=rule_of(node, graph),
                                  raw=local if folded != local else None))
            # as accumulated: the child's indices are summed over, so they must be its own
            fresh = {} if node is target else {q: sp.Dummy(q.name, integer=True, nonnegative=True)
                                               for q in node.index}
            idx = tuple(fresh.get(q, q) for q in node.index)
            local = _tidy(sp.diff(node.entry(idx), parent.at(parent.index)), graph)
            stores = [(adjoint, adjoint[node.name], local)]
            if display:
                mine = deltas[node.name] if node.name in named else shown[node.name]
                stores.append((shown, mine, fold(local, node, graph)))
            for store, factor, d in stores:
                body = factor.xreplace(fresh) * d
                if fresh:
                    body = sp.Sum(body, *[(fresh[q], 0, n - 1) for q, n in zip(node.index, node.shape)])
                store[pname] = _tidy(store.get(pname, 0) + body, graph)
    derived: dict[int, sp.Expr] = {}
    shown_form: dict[int, sp.Expr] = {}
    for c in graph.claims:
        if c.wrt is None:
            derived[c.index] = shown_form[c.index] = target.at(target.index)
            continue
        derived[c.index] = adjoint.get(c.wrt, sp.Integer(0))
        if display:
            shown_form[c.index] = fold(shown.get(c.wrt, sp.Integer(0)), None, graph)
            steps.append(Step("result", c.wrt, shown_form[c.index]))
    return IndexedDerivation(derived, shown_form, tuple(steps))


def _delta_symbol(node: INode, count: int) -> sp.Expr:
    name = "delta" if count == 1 or "_" in node.name else f"delta^{{({node.name})}}"
    if not node.shape:
        return sp.Symbol(f"delta_{node.name}", real=True)
    return sp.IndexedBase(name, real=True)[node.index]


def fold(e: sp.Expr, node: INode | None, graph: IndexedGraph, *, display: bool = True,
         only_elementwise: bool = False) -> sp.Expr:
    """Write a local derivative in the intermediates it came from, for display:
    exp(-x)/(1 + exp(-x))**2 becomes O (1 - O) when O = sigma(x); exp(z_i) / sum becomes p_i.
    (Also a proof rung: a derivative written in O is often a polynomial where in x it is not.)"""
    for other in graph.nodes.values():
        if other.formula is None or (only_elementwise and not _elementwise(other, graph)):
            continue
        entry = other.entry(other.index)
        if _elementwise(other, graph):
            args = entry.atoms(sp.Indexed) or (entry.free_symbols - set(graph.sizes.values()))
            if len(args) != 1:
                continue
            (arg,) = args
            for atom, mirror in ((sp.exp(-arg), sp.exp(arg)), (sp.exp(arg), sp.exp(-arg)),
                                 (sp.tanh(arg), None)):
                if not entry.has(atom):
                    continue
                sol = sp.solve(sp.Eq(other.at(other.index), entry), atom, dict=True)
                if len(sol) == 1:
                    e = _at_any_index(e, atom, sol[0][atom], other)
                    if mirror is not None:  # e^{x} = 1 / e^{-x}
                        e = _at_any_index(e, mirror, 1 / sol[0][atom], other)
        elif other.index:
            num, den = sp.fraction(sp.together(entry))
            if den == 1 or not num.has(*other.index):
                continue
            # hold each denominator (a sum) aside, so its own terms are not rewritten
            hold = sp.Function("held")
            wilds = {q: sp.Wild(f"w_{q.name}") for q in other.index}
            den_free = tuple(q for q in other.index if den.has(q))
            den_pat = canonical(den).xreplace(wilds)
            e = e.replace(den_pat, hold(*[wilds[q] for q in den_free]))
            held = hold(*den_free)
            e = _at_any_index(e, num, other.at(other.index) * held, other)
            e = sp.cancel(e).replace(lambda x: isinstance(x, hold) and len(x.args) == len(den_free),
                                     lambda x: canonical(den).xreplace(dict(zip(den_free, x.args))))
    return pretty(_unit_rows(e, graph)) if display else e


def _normalised(graph: IndexedGraph) -> dict[Any, sp.Expr]:
    """Bases whose rows sum to 1 along the last axis: probability or one-hot variables, and
    intermediates defined as x / sum of x over their last index (softmax)."""
    out = {b: n for b, n in graph.rows_sum_to_one}
    for node in graph.nodes.values():
        if node.formula is None or not node.index or _elementwise(node, graph):
            continue
        num, den = sp.fraction(sp.together(node.entry(node.index)))
        last = node.index[-1]
        total = canonical(sp.Sum(num, (last, 0, node.shape[-1] - 1)))
        if canonical(den) == total:
            out[node.symbol] = node.shape[-1]
    return out


def _unit_rows(e: sp.Expr, graph: IndexedGraph) -> sp.Expr:
    """For display: a sum of a normalised row over its last axis is 1."""
    rows = _normalised(graph)

    def one(s: sp.Sum) -> sp.Expr:
        if len(s.limits) != 1 or not isinstance(s.function, sp.Indexed):
            return s
        (var, lo, hi), body = s.limits[0], s.function
        if (body.base in rows and body.indices[-1] == var and lo == 0 and hi == rows[body.base] - 1
                and not any(i.has(var) for i in body.indices[:-1])):
            return sp.Integer(1)
        return s

    return e.replace(lambda x: isinstance(x, sp.Sum), one) if rows else e


def _at_any_index(e: sp.Expr, pattern: sp.Expr, value: sp.Expr, node: INode) -> sp.Expr:
    """Replace `pattern` (written at node's own indices) at whatever indices it appears."""
    if not node.index:
        return e.xreplace({pattern: value}) if e.has(pattern) else e.subs(pattern, value)
    wilds = {q: sp.Wild(f"w_{q.name}") for q in node.index}
    return e.replace(pattern.xreplace(wilds), value.xreplace(wilds), exact=False)


def _one_minus(e: sp.Expr) -> sp.Expr:
    """-(O - 1) O -> (1 - O) O: the sign the textbooks write."""
    if not isinstance(e, sp.Mul):
        return e
    coeff, factors = e.as_coeff_mul()
    if coeff >= 0:
        return e
    for f in factors:
        if isinstance(f, sp.Add) and -1 in f.args:
            rest = [x for x in factors if x is not f]
            return sp.Mul(-coeff, -f, *rest, evaluate=False) if coeff != -1 else sp.Mul(-f, *rest)
    return e


def pretty(e: sp.Expr) -> sp.Expr:
    """A display form: factored where that is cheap, common factors pulled out of sums."""
    if e.has(sp.Sum):
        return _one_minus(sp.factor_terms(e))
    return _one_minus(sp.factor(sp.cancel(e)))


def _at_any_index(e: sp.Expr, pattern: sp.Expr, value: sp.Expr, node: INode) -> sp.Expr:
    """Replace `pattern` (written at node's own index) at whatever index it appears."""
    wilds = {q: sp.Wild(f"w_{q.name}") for q in node.index}
    pat = pattern.xreplace(wilds)
    return e.replace(pat, value.xreplace(wilds), exact=False) if wilds else e.xreplace({pattern: value})


def rule_of(node: INode, graph: IndexedGraph) -> str:
    """The differentiation rule a person would name for this node's definition."""
    e = node.entry(node.index)
    num, den = sp.fraction(sp.together(e))
    if _elementwise(node, graph):
        (arg,) = e.atoms(sp.Indexed) or e.free_symbols or (None,)
        if arg is not None and e == 1 / (1 + sp.exp(-arg)):
            return "sigmoid: sigma' = sigma (1 - sigma)"
        for f, name in ((sp.tanh, "tanh: tanh' = 1 - tanh^2"), (sp.log, "log: (log u)' = u'/u"),
                        (sp.exp, "exp: (e^u)' = e^u"), (sp.Max, "relu: 1 where x > 0")):
            if e.has(f):
                return name
        return "power rule" if e.has(sp.Pow) else "linear"
    if den != 1 and den.has(sp.Sum):
        return "quotient rule"
    if isinstance(e, sp.Sum) or e.has(sp.Sum):
        return "sum rule" if not e.has(sp.Pow) else "sum and power rules"
    if isinstance(e, sp.Mul):
        return "product rule"
    return "chain rule"


def _elementwise(node: INode, graph: IndexedGraph) -> bool:
    """An activation: its entry reads one entry of one parent, with no sum."""
    probe = node.entry(node.index)
    scalars = {s for s in probe.atoms(sp.Symbol) if s not in node.index}
    scalars -= {b.label for b in (x.base for x in probe.atoms(sp.Indexed))}
    scalars -= set(graph.sizes.values())
    return not probe.has(sp.Sum) and len(probe.atoms(sp.Indexed)) + len(scalars) == 1
