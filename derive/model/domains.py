"""Where a variable lives: SymPy assumptions for the proof, a sampler for the numerics.

A domain answers four questions: which SymPy assumptions its entries carry, how to draw
random values inside it, how those values are fed to a formula (a class label is fed as its
one-hot row), and which equalities hold between entries (a probability vector sums to one),
so a proof can use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np
import sympy as sp


@dataclass(frozen=True, kw_only=True)
class Domain:
    """Base class; subclasses override what differs."""

    name: str = "real"
    assumptions: dict[str, bool] = field(default_factory=lambda: {"real": True}, compare=False)

    def formula_shape(self, shape: tuple[int, ...], sizes: dict[str, int]) -> tuple[int, ...]:
        """Shape of the array of SymPy symbols that stands for a value of `shape`."""
        return shape

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, values: np.ndarray, sizes: dict[str, int]) -> np.ndarray:
        """Values as fed to formulas (float64, of `formula_shape`)."""
        return np.asarray(values, dtype=np.float64)

    def constraints(self, symbols: np.ndarray) -> dict[sp.Symbol, sp.Expr]:
        """Substitutions that encode the domain's equalities (used by proofs)."""
        return {}

    @property
    def differentiable(self) -> bool:
        return True

    @property
    def symmetric(self) -> bool:
        """Square matrices with A[i, j] = A[j, i]: a proof may use one symbol per unordered pair."""
        return False

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, kw_only=True)
class Real(Domain):
    """Any real number; sampled from N(0, scale^2)."""

    name: str = "real"
    scale: float = 2.0

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        return rng.normal(0.0, self.scale, size=shape)


@dataclass(frozen=True, kw_only=True)
class Positive(Domain):
    """Strictly positive; sampled log-normally (about 0.2 to 5)."""

    name: str = "positive"
    assumptions: dict[str, bool] = field(default_factory=lambda: {"positive": True}, compare=False)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        return np.exp(rng.normal(0.0, 0.75, size=shape))


@dataclass(frozen=True, kw_only=True)
class UnitInterval(Domain):
    """The open interval (0, 1), sampled away from both ends (probabilities, sigmoid outputs)."""

    name: str = "unit_interval"
    assumptions: dict[str, bool] = field(default_factory=lambda: {"positive": True}, compare=False)
    margin: float = 0.02

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        return rng.uniform(self.margin, 1.0 - self.margin, size=shape)


def _last_entry_eliminated(symbols: np.ndarray) -> dict[sp.Symbol, sp.Expr]:
    """Rows along the last axis sum to one: write each row's last entry as 1 - the rest."""
    rows = np.asarray(symbols, dtype=object).reshape(-1, symbols.shape[-1])
    return {row[-1]: 1 - sp.Add(*row[:-1]) for row in rows}


@dataclass(frozen=True, kw_only=True)
class Simplex(Domain):
    """Probability vectors along the last axis: positive entries summing to one."""

    name: str = "simplex"
    assumptions: dict[str, bool] = field(default_factory=lambda: {"positive": True}, compare=False)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        z = rng.normal(0.0, 1.0, size=shape)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def constraints(self, symbols: np.ndarray) -> dict[sp.Symbol, sp.Expr]:
        return _last_entry_eliminated(symbols)


@dataclass(frozen=True, kw_only=True)
class OneHot(Domain):
    """One-hot rows along the last axis (a target distribution that is a class)."""

    name: str = "one_hot"
    assumptions: dict[str, bool] = field(default_factory=lambda: {"nonnegative": True}, compare=False)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        k = shape[-1]
        labels = rng.integers(0, k, size=shape[:-1])
        return np.eye(k)[labels]

    def constraints(self, symbols: np.ndarray) -> dict[sp.Symbol, sp.Expr]:
        return _last_entry_eliminated(symbols)

    @property
    def differentiable(self) -> bool:
        return False


@dataclass(frozen=True, kw_only=True)
class Binary(Domain):
    """A 0/1 target (as nn.BCELoss expects); the proof treats it as any real y."""

    name: str = "binary"

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        return rng.integers(0, 2, size=shape).astype(np.float64)

    @property
    def differentiable(self) -> bool:
        return False


@dataclass(frozen=True)  # not kw_only: Label("k") names the class count
class Label(Domain):
    """A class index in 0..k-1, where `classes` names the size k: Label("k").

    Formulas see it as its one-hot row (so `t` of shape (B,) is a (B, k) array of symbols);
    torch references receive the integer labels themselves, as F.cross_entropy expects.
    """

    classes: str = "k"
    name: str = field(default="label", kw_only=True)
    assumptions: dict[str, bool] = field(default_factory=lambda: {"nonnegative": True},
                                         compare=False, kw_only=True)

    def __post_init__(self) -> None:
        if not (isinstance(self.classes, str) and self.classes.isidentifier()):
            from ..errors import SpecError

            raise SpecError(f"Label takes the name of the size that counts the classes, e.g. Label('k') "
                            f"with sizes={{'k': {self.classes if isinstance(self.classes, int) else 10}}}; "
                            f"got {self.classes!r}")

    def formula_shape(self, shape: tuple[int, ...], sizes: dict[str, int]) -> tuple[int, ...]:
        return (*shape, sizes[self.classes])

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        return rng.integers(0, sizes[self.classes], size=shape)

    def encode(self, values: np.ndarray, sizes: dict[str, int]) -> np.ndarray:
        return np.eye(sizes[self.classes])[np.asarray(values, dtype=np.int64)]

    def constraints(self, symbols: np.ndarray) -> dict[sp.Symbol, sp.Expr]:
        return _last_entry_eliminated(symbols)

    @property
    def differentiable(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"label({self.classes})"


REAL = Real()
POSITIVE = Positive()
UNIT_INTERVAL = UnitInterval()
SIMPLEX = Simplex()
ONE_HOT = OneHot()
BINARY = Binary()


def _square_batch(shape: tuple[int, ...], name: str) -> int:
    if len(shape) < 2 or shape[-1] != shape[-2]:
        from ..errors import SpecError
        raise SpecError(f"domain {name!r} is for square matrices (n, n), got shape {shape[1:]}")
    return shape[-1]


def _orthogonal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Haar-random orthogonal matrices (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=shape))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def _symmetric_pairs(symbols: np.ndarray) -> dict[sp.Symbol, sp.Expr]:
    """A[..., j, i] -> A[..., i, j] for i < j: one symbol per unordered pair."""
    arr = np.asarray(symbols, dtype=object)
    n = arr.shape[-1]
    return {arr[(*batch, j, i)]: arr[(*batch, i, j)]
            for batch in np.ndindex(*arr.shape[:-2]) for i in range(n) for j in range(i + 1, n)}


@dataclass(frozen=True, kw_only=True)
class Symmetric(Domain):
    """Symmetric matrices A = A^T, entries of scale about `scale` ((G + G^T) / 2, G Gaussian).

    The convention for derivatives (also SPD's): a gradient with respect to a symmetric matrix
    is the unconstrained one, d f / d A[i, j] with every entry independent, evaluated at a
    symmetric point, as torch autograd and finite differences of single entries compute it
    (d (x^T A x) / dA = x x^T, not 2 x x^T - diag). The derivation uses independent entries;
    the proof then writes A[j, i] as A[i, j] (`constraints`), so claim - derived only has to
    vanish on symmetric matrices: 2 A x for (A + A^T) x is proved, A x is refuted.
    """

    name: str = "symmetric"
    scale: float = 2.0

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        _square_batch(shape, self.name)
        g = rng.normal(0.0, self.scale, size=shape)
        return (g + np.swapaxes(g, -1, -2)) / 2  # exactly symmetric

    def constraints(self, symbols: np.ndarray) -> dict[sp.Symbol, sp.Expr]:
        return _symmetric_pairs(symbols)

    @property
    def symmetric(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class SPD(Symmetric):
    """Symmetric positive definite matrices, eigenvalues in [low, high] (well conditioned); a
    `Symmetric` domain (its proofs use A[j, i] = A[i, j]).

    Derivatives follow `Symmetric`'s convention: the unconstrained gradient (independent
    entries) at a symmetric point, with the proof using A[j, i] = A[i, j]; so d log det X / dX
    = X^{-1} is proved, as X^{-T} is.
    """

    name: str = "spd"
    low: float = 0.5
    high: float = 2.5

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        _square_batch(shape, self.name)
        q = _orthogonal(rng, shape)
        eig = rng.uniform(self.low, self.high, size=shape[:-1])
        x = (q * eig[..., None, :]) @ np.swapaxes(q, -1, -2)
        return (x + np.swapaxes(x, -1, -2)) / 2  # exactly symmetric


@dataclass(frozen=True, kw_only=True)
class Invertible(Domain):
    """Square matrices U diag(s) V^T with singular values s in [low, high] and random signs:
    invertible with condition number at most high / low."""

    name: str = "invertible"
    low: float = 0.5
    high: float = 2.0

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        _square_batch(shape, self.name)
        u, v = _orthogonal(rng, shape), _orthogonal(rng, shape)
        s = rng.uniform(self.low, self.high, size=shape[:-1])
        return (u * s[..., None, :]) @ np.swapaxes(v, -1, -2)


SPD_MATRIX = SPD()
SYMMETRIC = Symmetric()
INVERTIBLE = Invertible()
