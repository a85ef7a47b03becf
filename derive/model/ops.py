"""The formula vocabulary: elementwise and reduction operations on arrays of SymPy expressions.

An array is either a numpy array of dtype object (explicit sizes: `+ - * / **` broadcast like
numpy, `@` is a matrix product) or a `derive.indexed.SymArray` (a symbolic size n, entries
written with indices and Sums); every function here accepts both where it can, and scalars
are SymPy expressions. Everything is defined from elementary SymPy functions (sigmoid is
1/(1+exp(-x)), softmax is exp/sum exp, gelu is x/2 (1 + erf(x/sqrt 2))), so a derivative is
derived, never looked up from a rule we wrote.

The vocabulary lives in four modules and is re-exported here: `ops_core` (lifting, sums,
sizes), `ops_math` (the elementwise math library, comparisons, activations, losses),
`ops_reduce` (var, std, prod, scans, norms) and `ops_linalg` (matrix functions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from .indexed import SymArray
from .ops_core import (_unwrap, count, elementwise, elementwise_n, eye, full, half, mean, shape,
                       size, sum_)
from .ops_linalg import (MATRIX_LIMIT, _det, _placeholders, _small, _square, cholesky, cross, det,
                         diag, dot, inv, logdet, outer, pinv, slogdet, solve, solve_triangular,
                         trace, transpose, tril, triu)
from .ops_math import (DOMAINS, SELU_ALPHA, SELU_SCALE, Ceil, ConditionError, Floor, Interval, Round,
                       Sign, Trunc,
                       abs_, acos, acosh, asin, asinh, atan, atan2, atanh, ceil, celu, clamp,
                       clamp_max, clamp_min, compare, copysign, cos, cosh, digamma, elu, erf, erfc,
                       erfinv, exp, exp2, expm1, floor, fmod, frac, gelu, hardshrink, hardsigmoid,
                       hardswish, hardtanh, huber, hypot, jump_arguments, leaky_relu, lgamma, log,
                       log1p, log2, log10, log_sigmoid, logaddexp, logaddexp2, logit, maximum,
                       minimum, mish, polygamma, pow_, prelu, reciprocal, relu, remainder,
                       round_, rsqrt, selu, sigmoid, sign, silu, sin, sinc, sinh, smooth_l1,
                       softplus, softshrink, softsign, sqrt, square, step, tan, tanh, threshold,
                       trunc, where, xlog1py, xlogy)
from .ops_reduce import amax, amin, cumprod, cumsum, logcumsumexp, norm, prod, std, var


pi = sp.pi
E = sp.E
clip = clamp  # numpy's name


def zeros(*dims: Any) -> Any:
    """An array of zeros of the given sizes (ints or size symbols)."""
    return full(0, *dims)


def ones(*dims: Any) -> Any:
    """An array of ones of the given sizes (ints or size symbols)."""
    return full(1, *dims)


def softmax(a: Any, axis: int = -1) -> Any:
    e = exp(a)
    return e / sum_(e, axis=axis, keepdims=True)


def log_softmax(a: Any, axis: int = -1) -> Any:
    """z - log(sum(exp(z))): the form torch computes (without its max shift)."""
    if not isinstance(a, SymArray):
        a = np.asarray(a, dtype=object)
    return a - log(sum_(exp(a), axis=axis, keepdims=True))


def logsumexp(a: Any, axis: int = -1) -> Any:
    return log(sum_(exp(a), axis=axis))
