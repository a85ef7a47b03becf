"""Proofs for every size: the identity at symbolic sizes (n, B, k, ...), in index notation.

Variables and named intermediates become IndexedBase objects (z[i], p[i], O_k[k]); each
definition is an entry formula over its parents, built by the same `derive.ops` calls as at
explicit sizes. The derivative is accumulated backwards over the graph with generic indices:
the adjoint of a parent is Sum over the child's indices of (child adjoint) * (local
derivative), and the Kronecker deltas that differentiation produces collapse those sums.
The proof ladder then mirrors the explicit one, with sums made canonical, index ranges given
to `refine`, and sums of a probability or one-hot row replaced by 1.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import sympy as sp

from .domains import Label, OneHot, Simplex
from .errors import SpecError, UnsupportedError
from .indexed import SymArray, canonical
from .bounded import in_worker, stage
from .proof import clearly_nonzero, exp_to_symbols, rational_zero
from .spec import Identity
from .steps import Step

INDEX_LETTERS = "ijklmabcdefghpqruvw"


@dataclass(frozen=True)
class INode:
    """A variable (formula None) or intermediate at symbolic sizes."""

    name: str
    shape: tuple[sp.Expr, ...]
    symbol: Any  # IndexedBase for arrays, Symbol for scalars
    formula: Any = None  # SymArray or Expr over the parents' symbols
    parents: tuple[str, ...] = ()
    index: tuple[sp.Symbol, ...] = ()  # this node's generic indices

    def at(self, idx: tuple[Any, ...]) -> sp.Expr:
        return self.symbol[idx] if self.shape else self.symbol

    def entry(self, idx: tuple[Any, ...]) -> sp.Expr:
        if isinstance(self.formula, SymArray):
            return self.formula.entry(*idx)
        return sp.sympify(self.formula)


@dataclass(frozen=True)
class IClaim:
    index: int
    wrt: str | None
    formula: Any
    indices: tuple[sp.Symbol, ...]


@dataclass(frozen=True)
class IndexedGraph:
    """An identity at symbolic sizes."""

    name: str
    sizes: dict[str, sp.Symbol]
    nodes: dict[str, INode]
    target: str
    claims: tuple[IClaim, ...]
    rows_sum_to_one: tuple[tuple[Any, sp.Expr], ...] = ()
    ranges: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)

    def assumptions(self) -> Any:
        return sp.And(*[sp.Q.ge(i, 0) & sp.Q.le(i, n - 1) for i, n in self.ranges.items()])


def size_names(identity: Identity) -> list[str]:
    names = {a for v in identity.variables for a in v.shape if isinstance(a, str)}
    names |= {v.domain.classes for v in identity.variables if isinstance(v.domain, Label)}
    return sorted(names)


def build_indexed(identity: Identity, *, require_sizes: bool = True) -> IndexedGraph:
    """Instantiate `identity` with every size a positive integer symbol (scalars stay scalars)."""
    names = size_names(identity)
    if not names and require_sizes:
        raise UnsupportedError(f"{identity.name} has no sizes: there is no n to prove it for")
    sizes = {n: sp.Symbol(n, integer=True, positive=True) for n in names}
    taken = set(names) | {v.name for v in identity.variables} | {d.name for d in identity.definitions}
    ranges: dict[sp.Symbol, sp.Expr] = {}

    def index(letter: str) -> sp.Symbol:
        return sp.Symbol(letter, integer=True, nonnegative=True)

    def fresh(shape: tuple[sp.Expr, ...], name: str = "", avoid: tuple[sp.Symbol, ...] = ()) -> tuple[sp.Symbol, ...]:
        """Indices for a node: the textbook's letters when its name carries them (O_k -> k,
        W_jk -> j, k), otherwise unused letters."""
        suffix = name.split("_", 1)[1] if "_" in name else ""
        if (len(suffix) == len(shape) and suffix.isalpha() and len(set(suffix)) == len(suffix)
                and not set(suffix) & taken and not {index(c) for c in suffix} & set(avoid)
                and all(ranges.get(index(c), n) == n for c, n in zip(suffix, shape))):
            out = tuple(index(c) for c in suffix)
        else:  # lettered at the end, the target's first (p_i, z_j as in d p_i / d z_j)
            out = tuple(sp.Dummy("index", integer=True, nonnegative=True) for _ in shape)
        ranges.update(zip(out, shape))
        return out

    def letter_the_rest(first: list[str]) -> None:
        pool = iter(c for c in INDEX_LETTERS if c not in taken and index(c) not in ranges)
        order = first + [n for n in nodes if n not in first]
        rename: dict[sp.Symbol, sp.Symbol] = {}
        for name in order:
            for q in nodes[name].index:
                if isinstance(q, sp.Dummy) and q not in rename:
                    try:
                        rename[q] = index(next(pool))
                    except StopIteration:
                        raise UnsupportedError("too many indices for a symbolic-size proof") from None
        for name, node in nodes.items():
            nodes[name] = replace(node, index=tuple(rename.get(q, q) for q in node.index))
        for old, new in rename.items():
            ranges[new] = ranges.pop(old)

    def resolve(axis: str | int) -> sp.Expr:
        return sizes[axis] if isinstance(axis, str) else sp.Integer(axis)

    ns = SimpleNamespace()
    nodes: dict[str, INode] = {}
    rows: list[tuple[Any, sp.Expr]] = []
    owner: dict[Any, str] = {}
    for var in identity.variables:
        shape = tuple(resolve(a) for a in var.shape)
        if isinstance(var.domain, Label):
            shape = (*shape, sizes[var.domain.classes])
        sym = _symbol(var.name, shape, var.domain.assumptions)
        nodes[var.name] = INode(var.name, shape, sym,
                                index=fresh(shape, var.name) if var.domain.differentiable else ())
        owner[sym] = var.name
        if isinstance(var.domain, (Simplex, OneHot, Label)):
            rows.append((sym, shape[-1]))
        setattr(ns, var.name, _view(sym, shape))
    for d in identity.definitions:
        try:
            formula = d.formula(ns)
        except (SpecError, UnsupportedError):
            raise
        except Exception as exc:
            raise UnsupportedError(f"{identity.name}: definition {d.name!r} cannot be written for "
                                   f"symbolic sizes ({type(exc).__name__}: {exc})") from exc
        shape = formula.shape if isinstance(formula, SymArray) else ()
        sym = _symbol(d.name, shape, {"real": True})
        probe = formula.entry(*[sp.Integer(0)] * len(shape)) if shape else sp.sympify(formula)
        used = {owner[b] for b in _bases(probe) if b in owner}
        parents = tuple(n for n in nodes if n in used)
        nodes[d.name] = INode(d.name, shape, sym, formula, parents, fresh(shape, d.name))
        owner[sym] = d.name
        setattr(ns, d.name, _view(sym, shape))
    target = nodes[identity.target]
    if any(set(n.index) & set(target.index) for n in nodes.values() if n is not target):
        # the claim's target indices stay free in every derivative: no other node may use them
        target = nodes[identity.target] = replace(target, index=fresh(target.shape, avoid=tuple(ranges)))
    for c in identity.claims:  # a Jacobian needs distinct indices for the target and the variable
        wrt = nodes.get(c.wrt) if c.wrt else None
        if wrt is not None and set(wrt.index) & set(target.index):
            nodes[c.wrt] = replace(wrt, index=fresh(wrt.shape, avoid=target.index))
    letter_the_rest([identity.target, *(c.wrt for c in identity.claims if c.wrt)])
    target = nodes[identity.target]
    claims = []
    for c in identity.claims:
        try:
            formula = c.formula(ns)
        except Exception as exc:
            raise UnsupportedError(f"{identity.name}: claim {c.label} cannot be written for symbolic "
                                   f"sizes ({type(exc).__name__}: {exc})") from exc
        wrt_shape = nodes[c.wrt].shape if c.wrt else ()
        claims.append(IClaim(len(claims), c.wrt, formula, target.index + (nodes[c.wrt].index if c.wrt else ())))
        if isinstance(formula, SymArray) and len(formula.shape) != len(target.shape) + len(wrt_shape):
            raise SpecError(f"{identity.name}: claim {c.label} has {len(formula.shape)} axes, "
                            f"expected {len(target.shape) + len(wrt_shape)}")
    return IndexedGraph(identity.name, sizes, nodes, identity.target, tuple(claims), tuple(rows), ranges)


def _symbol(name: str, shape: tuple[sp.Expr, ...], assumptions: dict[str, bool]) -> Any:
    if not shape:
        return sp.Symbol(name, **assumptions)
    return sp.IndexedBase(name, shape=shape, **assumptions)


def _view(sym: Any, shape: tuple[sp.Expr, ...]) -> Any:
    if not shape:
        return sym
    return SymArray(shape, lambda *i: sym[i])


def _bases(e: sp.Expr) -> set[Any]:
    out: set[Any] = set(e.atoms(sp.Symbol))
    out |= {x.base for x in e.atoms(sp.Indexed)}
    return out


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


# --- proof ----------------------------------------------------------------------------------

def _claim_entry(c: IClaim) -> sp.Expr:
    if isinstance(c.formula, SymArray):
        return c.formula.entry(*c.indices)
    return sp.sympify(c.formula)


def _split_sum(s: sp.Sum) -> sp.Expr:
    """A sum made linear: one sum per term of the expanded body, with the factors that do not
    depend on any summation index pulled out (a sum of 1 becomes the count)."""
    own = [v for v, _, _ in s.limits]
    out = []
    for term in sp.Add.make_args(sp.expand(sp.expand_log(s.function, force=False))):
        inner, outer = [], []
        for f in sp.Mul.make_args(term):
            (inner if f.has(*own) else outer).append(f)
        if inner:
            out.append(sp.Mul(*outer) * sp.Sum(sp.Mul(*inner), *s.limits))
        else:
            out.append(sp.Mul(*outer, *[hi - lo + 1 for _, lo, hi in s.limits]))
    return sp.Add(*out)


def _rows_to_one(e: sp.Expr, graph: IndexedGraph) -> sp.Expr:
    """Sums made linear, and a sum over the last axis of a probability / one-hot row is 1."""
    bases = {b: n for b, n in graph.rows_sum_to_one}

    def fix(s: sp.Sum) -> sp.Expr:
        if _splittable(s):
            return _split_sum(s)
        if len(s.limits) != 1:
            return s
        var, lo, hi = s.limits[0]
        inner, outer = [], []
        for f in sp.Mul.make_args(sp.cancel(s.function)):
            (inner if f.has(var) else outer).append(f)
        body = sp.Mul(*inner)
        if (isinstance(body, sp.Indexed) and body.base in bases and body.indices[-1] == var
                and lo == 0 and sp.simplify(hi - (bases[body.base] - 1)) == 0
                and not any(i.has(var) for i in body.indices[:-1])):
            return sp.Mul(*outer)
        return sp.Mul(*outer) * sp.Sum(body, (var, lo, hi)) if outer else s

    previous = None
    for _ in range(20):
        if previous == e:
            break
        previous = e
        e = canonical(sp.expand(e.replace(lambda x: isinstance(x, sp.Sum), fix)))
    return e


def _splittable(s: sp.Sum) -> bool:
    own = [v for v, _, _ in s.limits]
    body = sp.expand(sp.expand_log(s.function, force=False))
    return isinstance(body, sp.Add) or any(not f.has(*own) for f in sp.Mul.make_args(body))


def _expand(e: sp.Expr, graph: IndexedGraph, only_elementwise: bool) -> sp.Expr:
    """Write intermediates by their definitions (only the elementwise ones, if asked)."""
    for node in reversed([n for n in graph.nodes.values() if n.formula is not None]):
        if only_elementwise and not _elementwise(node, graph):
            continue
        if node.shape:
            e = e.replace(lambda x, b=node.symbol: isinstance(x, sp.Indexed) and x.base == b,
                          lambda x, n=node: n.entry(tuple(x.indices)))
        else:
            e = e.xreplace({node.symbol: node.entry(())})
    return e


def _elementwise(node: INode, graph: IndexedGraph) -> bool:
    """An activation: its entry reads one entry of one parent, with no sum."""
    probe = node.entry(node.index)
    scalars = {s for s in probe.atoms(sp.Symbol) if s not in node.index}
    scalars -= {b.label for b in (x.base for x in probe.atoms(sp.Indexed))}
    scalars -= set(graph.sizes.values())
    return not probe.has(sp.Sum) and len(probe.atoms(sp.Indexed)) + len(scalars) == 1


def _deltas(e: sp.Expr, graph: IndexedGraph) -> list[tuple[sp.Symbol, sp.Symbol]]:
    pairs = []
    for d in e.atoms(sp.KroneckerDelta):
        a, b = d.args
        if a in graph.ranges and b in graph.ranges and graph.ranges[a] == graph.ranges[b]:
            pairs.append(tuple(sorted((a, b), key=str)))
    return sorted(set(pairs), key=str)


def prove_indexed(e: sp.Expr, graph: IndexedGraph, simplify_ok: bool = True,
                  depth: int = 0) -> tuple[bool, str]:
    """(proved, method) for claim entry - derived entry == 0 at every size.

    Kronecker deltas of two generic indices are split into the cases i == j and i != j.
    """
    e = _rows_to_one(_tidy(e, graph), graph)
    if e == 0:
        return True, "structural (indices, intermediates opaque)"
    pairs = _deltas(e, graph)
    if pairs and depth < 3:
        a, b = pairs[0]
        same = e.xreplace({b: a})
        other = e.xreplace({sp.KroneckerDelta(a, b): 0, sp.KroneckerDelta(b, a): 0})
        ok_same, m1 = prove_indexed(same, graph, simplify_ok, depth + 1)
        if not ok_same:
            return False, ""
        ok_other, m2 = prove_indexed(other, graph, simplify_ok, depth + 1)
        if not ok_other:
            return False, ""
        return True, f"cases {a} = {b} and {a} != {b}: " + " / ".join(dict.fromkeys((m1, m2)))
    return _ladder(e, graph, simplify_ok)


def _zero(form: sp.Expr) -> bool:
    if form == 0:
        return True
    if form.has(sp.log):
        form = sp.expand_log(form, force=False)
    return rational_zero(exp_to_symbols(form) if form.has(sp.exp) else form)


def _merged_sums(e: sp.Expr, graph: IndexedGraph) -> list[sp.Expr] | None:
    """e as remainder + Sum(body_r, over range r) for each range: the expressions that are 0
    if every summand is 0 pointwise (sufficient, not necessary). None if e has another shape."""
    remainder: list[sp.Expr] = []
    bodies: dict[sp.Expr, list[sp.Expr]] = {}
    for term in sp.Add.make_args(sp.expand(e)):
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        if not sums:
            remainder.append(term)
            continue
        if len(sums) != 1 or len(sums[0].limits) != 1:
            return None
        (var, lo, hi), = sums[0].limits
        coeff = term / sums[0]
        if coeff.has(var) or lo != 0:
            return None
        index = sp.Symbol(f"r_{hi}", integer=True, nonnegative=True)  # one per range 0..hi
        graph.ranges[index] = hi + 1
        bodies.setdefault(hi, []).append(coeff * sums[0].function.xreplace({var: index}))
    return [sp.Add(*remainder), *(sp.Add(*parts) for parts in bodies.values())]


def _ladder(e: sp.Expr, graph: IndexedGraph, simplify_ok: bool) -> tuple[bool, str]:
    attempts: list[tuple[str, Callable[[], sp.Expr]]] = [  # each form built only when needed
        ("intermediates opaque", lambda: e),
        ("derivatives written in the activations",
         lambda: fold(e, None, graph, display=False, only_elementwise=True)),
        ("activations expanded", lambda: _expand(e, graph, only_elementwise=True)),
        ("definitions expanded", lambda: _expand(e, graph, only_elementwise=False))]
    form = e
    for label, make in attempts:
        form = _rows_to_one(_tidy(make(), graph), graph)
        if form == 0:
            return True, f"structural ({label})"
        if _zero(form):
            return True, f"rational normal form ({label})"
        parts = _merged_sums(form, graph) if form.has(sp.Sum) else None
        if parts and all(_zero(_rows_to_one(_tidy(p, graph), graph)) for p in parts):
            return True, f"summands zero pointwise ({label})"
    if simplify_ok and not clearly_nonzero(form):
        stage("simplify")
        if sp.simplify(form) == 0:
            return True, "simplify (definitions expanded)"
    return False, ""


@dataclass(frozen=True)
class ForAllN:
    """Outcome of the proof for symbolic sizes."""

    status: str  # "proved", "not proved", "unsupported", "timeout", "error", "not applicable", "skipped"
    seconds: float
    methods: tuple[str, ...] = ()
    detail: str = ""
    steps: tuple[Step, ...] = ()


def work(identity: Identity) -> Iterator[ForAllN]:
    """The bounded worker's job: build, derive and prove at symbolic sizes."""
    if in_worker():
        random.seed(0)  # SymPy's randomised steps, reproducible (only ever in a forked worker)
    start = time.perf_counter()
    if not size_names(identity):
        yield ForAllN("not applicable", 0.0, detail=f"{identity.name} has no sizes to vary")
        return
    try:
        stage("derivation for every n")
        graph = build_indexed(identity)
    except UnsupportedError as exc:
        yield ForAllN("unsupported", time.perf_counter() - start, detail=str(exc))
        return
    derivation = derive_indexed(graph, display=False)
    stage("proof for every n")
    steps = derivation.steps
    methods = []
    for c in graph.claims:
        proved, method = prove_indexed(_claim_entry(c) - derivation.derived[c.index], graph)
        if not proved:
            label = f"d/d{c.wrt}" if c.wrt else "value"
            yield ForAllN("not proved", time.perf_counter() - start,
                          detail=f"{label}: claim - derived not shown zero for symbolic "
                                 f"{', '.join(graph.sizes)}", steps=steps)
            return
        methods.append(method)
    yield ForAllN("proved", time.perf_counter() - start, tuple(dict.fromkeys(methods)), steps=steps)
