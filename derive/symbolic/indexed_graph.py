"""An identity as a graph of indexed nodes, with a symbolic size n."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import sympy as sp

from ..errors import SpecError, UnsupportedError
from ..model.domains import Label, OneHot, Simplex
from ..model.indexed import SymArray
from ..model.spec import Identity

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
    symmetric: tuple[Any, ...] = ()  # bases of symmetric matrices: A[i, j] = A[j, i] (proofs only)

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
    symmetric: list[Any] = []
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
        if var.domain.symmetric and len(shape) == 2:
            symmetric.append(sym)
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
    return IndexedGraph(identity.name, sizes, nodes, identity.target, tuple(claims), tuple(rows), ranges,
                        tuple(symmetric))


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
