"""The proof for every size n: sums split, deltas collapsed, rows summed to one."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import sympy as sp

from ..bounded import in_worker, stage
from ..errors import UnsupportedError
from ..model.indexed import SymArray, bound_key, canonical
from ..model.spec import Identity
from .every_n import _elementwise, _tidy, derive_indexed, fold
from .indexed_graph import IClaim, IndexedGraph, build_indexed, size_names
from .proof import clearly_nonzero, rational_zero
from .steps import Step

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
    done: dict[sp.Sum, sp.Expr] = {}  # the same sum recurs (inside exps, in many terms)

    def fix(s: sp.Sum) -> sp.Expr:
        if s not in done:
            done[s] = fix_once(s)
        return done[s]

    def fix_once(s: sp.Sum) -> sp.Expr:
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
        e = _symmetric_indices(canonical(no_products(sp.expand(e.replace(lambda x: isinstance(x, sp.Sum), fix)))),
                               graph)
    return e


def _symmetric_indices(e: sp.Expr, graph: IndexedGraph) -> sp.Expr:
    """A[j, i] -> A[i, j] (indices in a fixed order) for a symmetric A: equal entries, one form.
    Only the proof does this; the derivation differentiates independent entries (the
    unconstrained gradient, the numeric truths' convention), so claim - derived need only
    vanish on symmetric matrices."""
    if not graph.symmetric:
        return e
    bases = set(graph.symmetric)

    def swapped(x: sp.Basic) -> bool:
        return (isinstance(x, sp.Indexed) and x.base in bases and len(x.indices) == 2
                and sp.default_sort_key(x.indices[1]) < sp.default_sort_key(x.indices[0]))

    return e.replace(swapped, lambda x: x.base[x.indices[1], x.indices[0]]) if e.has(*bases) else e


def no_products(e: sp.Expr) -> sp.Expr:
    """Product(exp(f), limits) -> exp(Sum(f, limits)): SymPy's expand and cancel turn exp(Sum)
    into a Product (but leave exp(2 Sum) alone), and the two forms would not cancel."""
    if not e.has(sp.Product):
        return e
    return e.replace(lambda x: isinstance(x, sp.Product) and isinstance(x.function, sp.exp),
                     lambda x: sp.exp(sp.Sum(x.function.args[0], *x.limits)))


def opaque_exps(e: sp.Expr) -> sp.Expr:
    """exp(a S + b x_i + c) -> u_S**a * u_x**b * exp(c) with u positive symbols, for S a sum,
    x_i an entry or a symbol and a, b rational: the rational normal form then sees that
    exp(2 S) = exp(S)**2. Sums are atoms (never entered: an exp inside one depends on its
    summation index), and equal sums get one u whatever their indices are called."""
    cache: dict[str, sp.Symbol] = {}

    def u(rest: sp.Expr) -> sp.Symbol:
        key = bound_key(rest)
        if key not in cache:
            cache[key] = sp.Dummy(f"u{len(cache)}", positive=True)
        return cache[key]

    def split(arg: sp.Expr) -> sp.Expr:
        factors = []
        for term in sp.Add.make_args(sp.expand(arg, power_exp=False)):
            coeff, rest = term.as_coeff_Mul()
            if coeff.is_Rational and isinstance(rest, (sp.Symbol, sp.Indexed, sp.Sum)):
                factors.append(u(rest) ** coeff)
            else:
                factors.append(sp.exp(term))
        return sp.Mul(*factors)

    def walk(x: sp.Basic) -> sp.Basic:
        if isinstance(x, sp.Sum) or not x.args:
            return x
        if isinstance(x, sp.exp):
            return split(walk(x.args[0]))
        return x.func(*(walk(a) for a in x.args))

    return walk(e)


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
    form = no_products(form)
    if form == 0:
        return True
    if form.has(sp.log):
        form = sp.expand_log(form, force=False)
    return rational_zero(opaque_exps(form) if form.has(sp.exp) else form)


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
