"""derive.numeric.backends: one compiled program, evaluated by numpy (batched arrays), torch (float64
tensors, on any device) and mpmath (scalars at high precision), gives the same values."""

from __future__ import annotations

import math
import operator
from functools import reduce

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.numeric import backends
from derive.numeric.backends import Program, compile_program, evaluate
from derive.errors import SpecError, UnsupportedError

x, y = sp.symbols("x y", real=True)
INPUTS = (x, y)

# expressions in x (any real) and y (kept in [0.5, 2]), covering every lowered operation
EXPRESSIONS = {
    "polynomial": 3 * x**3 - x * y + sp.Rational(1, 3),
    "quotient": (x + 1) / y,
    "negative_power": y ** -2,
    "real_power": y ** sp.Rational(3, 2),
    "sqrt": sp.sqrt(x**2 + 1),
    "symbolic_exponent": y ** x,
    "constant_base": 2 ** x,
    "exp_log": sp.exp(-x) + sp.log(1 + x**2),
    "sigmoid": 1 / (1 + sp.exp(-x)),
    "trig": sp.sin(x) * sp.cos(y) + sp.tan(y / 3),
    "hyperbolic": sp.tanh(x) + sp.sinh(y) - sp.cosh(x / 2),
    "atan": sp.atan(x * y),
    "erf": sp.erf(x),
    "abs_sign": sp.Abs(x) * sp.sign(x - sp.Rational(1, 2)),
    "max": sp.Max(0, x),
    "max3": sp.Max(x, y, sp.Rational(1, 4)),
    "min": sp.Min(x, y),
    "heaviside": sp.Heaviside(x),
    "step": sp.Piecewise((1, x > 0), (0, True)),
    "piecewise3": sp.Piecewise((-1, x < -1), (x**2, x <= 1), (y, True)),
    "piecewise_ge": sp.Piecewise((x, x >= y), (y, True)),
    "constants": sp.pi * x + sp.E,
    "constant_functions": sp.log(2) * x + sp.sqrt(3) + sp.exp(sp.Rational(1, 2)) * y + sp.tanh(1),
    "piecewise_last_constant": sp.Piecewise((x, x > 0), (sp.Rational(1, 4), True)),
}
# constant values in a piece other than the last one (torch once cast them to bool)
CONSTANT_PIECES = {
    "half_or_zero": sp.Piecewise((sp.Rational(1, 2), x > 0), (0, True)),
    "sign_like": sp.Piecewise((-1, x < 0), (1, True)),
    "leaky_relu_derivative": sp.Piecewise((1, x > 0), (sp.Rational(1, 100), True)),
    "reversed": sp.Piecewise((sp.Rational(1, 100), x > 0), (1, True)),
}
NAMES = sorted(EXPRESSIONS)


def points(count: int = 9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-2.5, 2.5, count)
    xs[:3] = [-1.0, 1.0, 0.75]  # the piecewise boundaries themselves
    ys = rng.uniform(0.5, 2.0, count)
    ys[2] = 0.75  # x == y: the boundary of piecewise_ge
    return np.stack([xs, ys], axis=1)


def truth(expr: sp.Expr, px: float, py: float, digits: int = 30) -> float:
    """SymPy's own evaluation at the point (exact inputs, high precision)."""
    value = expr.subs({x: sp.Float(px, 30), y: sp.Float(py, 30)}).evalf(digits)
    return float(value)


def run_numpy(exprs: list[sp.Expr], cols: np.ndarray) -> np.ndarray:
    nb = backends.get("numpy")
    prog = compile_program(exprs, INPUTS)
    out = nb.run(prog, [cols[:, 0], cols[:, 1]])
    return nb.stack(out, (cols.shape[0],))


# --- numpy ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_numpy_batched_matches_sympy(name: str) -> None:
    expr = EXPRESSIONS[name]
    cols = points()
    got = run_numpy([expr], cols)
    assert got.shape == (cols.shape[0], 1) and got.dtype == np.float64
    want = np.array([truth(expr, px, py) for px, py in cols])
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-13, atol=1e-14)


def test_heaviside_is_one_half_at_zero_on_every_backend() -> None:
    prog = compile_program([sp.Heaviside(x)], [x])
    got = backends.get("numpy").run(prog, [np.array([-1.0, 0.0, 2.0])])[0]
    np.testing.assert_array_equal(got, [0.0, 0.5, 1.0])
    assert backends.get("mpmath").run(prog, [mpmath.mpf(0)])[0] == mpmath.mpf("0.5")


def test_step_piecewise_is_zero_at_its_kink() -> None:
    prog = compile_program([sp.Piecewise((1, x > 0), (0, True))], [x])
    got = backends.get("numpy").run(prog, [np.array([-1e-300, 0.0, 1e-300])])[0]
    np.testing.assert_array_equal(got, [0.0, 0.0, 1.0])


def test_constants_only_outputs_are_broadcast_by_stack() -> None:
    nb = backends.get("numpy")
    prog = compile_program([sp.Integer(3), x, sp.Rational(1, 4), sp.pi], [x])
    out = nb.run(prog, [np.array([1.0, 2.0, 5.0])])
    assert out[0] == 3.0 and np.ndim(out[0]) == 0
    stacked = nb.stack(out, (3,))
    assert stacked.shape == (3, 4)
    np.testing.assert_array_equal(stacked[:, 0], [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(stacked[:, 1], [1.0, 2.0, 5.0])
    np.testing.assert_array_equal(stacked[:, 2], [0.25] * 3)
    np.testing.assert_allclose(stacked[:, 3], [math.pi] * 3, rtol=0)


def test_stack_of_only_constants_and_of_nothing() -> None:
    nb = backends.get("numpy")
    prog = compile_program([sp.Integer(0), sp.Integer(-2)], [x])
    stacked = nb.stack(nb.run(prog, [np.zeros(4)]), (4,))
    assert stacked.shape == (4, 2)
    np.testing.assert_array_equal(stacked, [[0.0, -2.0]] * 4)
    assert nb.stack([], (5,)).shape == (5, 0)


def test_cse_shares_subexpressions_once() -> None:
    shared = sp.exp(x * y + 1)
    exprs = [shared / (1 + shared), shared**2, x + shared]
    prog = compile_program(exprs, INPUTS)
    assert isinstance(prog, Program)
    assert prog.inputs == INPUTS
    assert len(prog.outputs) == 3
    assert len(prog.temps) >= 1

    def uses_tmp(op: tuple) -> bool:
        return op[0] == "tmp" or any(isinstance(a, tuple) and uses_tmp(a) for a in op[1:])

    assert all(uses_tmp(o) for o in prog.outputs)
    cols = points()
    got = run_numpy(exprs, cols)
    for k, e in enumerate(exprs):
        want = [truth(e, px, py) for px, py in cols]
        np.testing.assert_allclose(got[:, k], want, rtol=1e-13)


def test_cse_evaluates_a_shared_subexpression_once() -> None:
    calls = []
    ops = dict(backends.get("numpy").ops)
    ops["sin"] = lambda a: (calls.append(1), np.sin(a))[1]
    shared = sp.sin(x * y)
    prog = compile_program([shared + 1, shared * 2, shared**3], INPUTS)
    evaluate(prog, [np.array([1.0]), np.array([2.0])], ops)
    assert len(calls) == 1


def test_program_is_plain_data_and_serves_any_operation_table() -> None:
    """A backend is only a table of operations: plain Python floats work too."""
    ops = {
        "num": float, "add": lambda *a: sum(a), "mul": lambda *a: reduce(operator.mul, a),
        "pow": operator.pow, "exp": math.exp, "log": math.log, "sqrt": math.sqrt,
    }
    expr = sp.sqrt(x) * sp.exp(y) + sp.log(x) / y
    prog = compile_program([expr], INPUTS)
    (got,) = evaluate(prog, [2.0, 0.5], ops)
    assert got == pytest.approx(math.sqrt(2) * math.exp(0.5) + math.log(2) / 0.5, rel=1e-15)


def test_complex_inputs_for_the_complex_step() -> None:
    """numpy evaluates analytic programs on complex128: Im f(x + ih)/h is f'(x)."""
    prog = compile_program([sp.exp(x) * sp.sin(x)], [x])
    h = 1e-30
    xs = np.array([0.3, -1.2]) + 1j * h
    (out,) = backends.get("numpy").run(prog, [xs])
    d = out.imag / h
    want = np.exp(xs.real) * (np.sin(xs.real) + np.cos(xs.real))
    np.testing.assert_allclose(d, want, rtol=1e-15)


# --- unsupported input ------------------------------------------------------------------------

@pytest.mark.parametrize("expr, match", [
    (sp.gamma(x), "gamma"),
    (sp.Function("f")(x), "f"),
    (sp.zeta(x) + 1, "zeta"),
    (sp.besselj(0, x), "besselj"),
])
def test_unsupported_function_raises_unsupported_error(expr: sp.Expr, match: str) -> None:
    with pytest.raises(UnsupportedError, match=match):
        compile_program([expr], [x])


def test_unknown_symbol_raises_unsupported_error() -> None:
    z = sp.Symbol("z")
    with pytest.raises(UnsupportedError, match="not an input"):
        compile_program([x + z], [x])


@pytest.mark.parametrize("expr, match", [
    (sp.nan, "non-real constant nan"), (sp.oo, "non-real constant oo"),
    (sp.zoo, "ComplexInfinity"), (x + sp.I, "ImaginaryUnit"),
], ids=["nan", "oo", "zoo", "I"])
def test_non_real_constant_raises_unsupported_error(expr: sp.Expr, match: str) -> None:
    with pytest.raises(UnsupportedError, match=match):
        compile_program([expr], [x])


def test_unsupported_condition_raises_unsupported_error() -> None:
    with pytest.raises(UnsupportedError, match="condition"):
        compile_program([sp.Piecewise((1, sp.Eq(x, 0)), (0, True))], [x])


def test_unsupported_error_is_a_derive_error_and_not_implemented() -> None:
    assert issubclass(UnsupportedError, NotImplementedError)


def test_registry() -> None:
    assert {"numpy", "torch", "mpmath"} <= set(backends.names())
    assert backends.get("numpy") is backends.get("numpy")
    assert backends.get("numpy").name == "numpy"
    with pytest.raises(SpecError, match="unknown backend 'jax'"):
        backends.get("jax")


# --- mpmath -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_mpmath_matches_sympy_to_many_digits(name: str) -> None:
    expr = EXPRESSIONS[name]
    mb = backends.get("mpmath")
    prog = compile_program([expr], INPUTS)
    with mpmath.workdps(40):
        for px, py in points(5, seed=1):
            (got,) = mb.run(prog, [mpmath.mpf(px), mpmath.mpf(py)])
            want = expr.subs({x: sp.Float(px, 60), y: sp.Float(py, 60)}).evalf(40)
            assert abs(got - mpmath.mpf(str(want))) <= mpmath.mpf(10) ** -32 * max(1, abs(got))


def test_mpmath_keeps_rationals_exact_at_high_precision() -> None:
    mb = backends.get("mpmath")
    prog = compile_program([x * sp.Rational(1, 3), sp.pi + 0 * x, sp.exp(x)], [x])
    with mpmath.workdps(60):
        third, pi, e = mb.run(prog, [mpmath.mpf(1)])
        assert abs(third * 3 - 1) < mpmath.mpf(10) ** -58
        assert abs(pi - mpmath.pi) < mpmath.mpf(10) ** -58
        assert abs(e - mpmath.e) < mpmath.mpf(10) ** -58
        # more precise than float64 could ever be
        assert abs(third - mpmath.mpf(1.0 / 3.0)) > mpmath.mpf(10) ** -20


def test_mpmath_stack_is_an_object_vector() -> None:
    mb = backends.get("mpmath")
    prog = compile_program([x + 1, sp.Integer(7)], [x])
    out = mb.stack(mb.run(prog, [mpmath.mpf(2)]), ())
    assert out.dtype == object and out.shape == (2,)
    assert out[0] == 3 and out[1] == 7


# --- torch ------------------------------------------------------------------------------------

def _torch_run(exprs: list[sp.Expr], cols: np.ndarray, device: str = "cpu"):  # noqa: ANN202
    torch = pytest.importorskip("torch")
    tb = backends.get("torch")
    prog = compile_program(exprs, INPUTS)
    t = torch.as_tensor(cols, dtype=torch.float64, device=device)
    out = tb.run(prog, [t[:, 0], t[:, 1]])
    return tb.stack(out, (cols.shape[0],))


@pytest.mark.parametrize("name", NAMES)
def test_torch_float64_matches_numpy(name: str) -> None:
    torch = pytest.importorskip("torch")
    expr = EXPRESSIONS[name]
    cols = points()
    got = _torch_run([expr], cols)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    assert got.shape == (cols.shape[0], 1)
    np.testing.assert_allclose(got.numpy()[:, 0], run_numpy([expr], cols)[:, 0], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", sorted(CONSTANT_PIECES))
def test_numpy_and_mpmath_piecewise_with_constant_pieces(name: str) -> None:
    expr = CONSTANT_PIECES[name]
    cols = points()
    want = np.array([truth(expr, px, py) for px, py in cols])
    np.testing.assert_array_equal(run_numpy([expr], cols)[:, 0], want)
    prog = compile_program([expr], INPUTS)
    got = [float(backends.get("mpmath").run(prog, [mpmath.mpf(px), mpmath.mpf(py)])[0])
           for px, py in cols]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["half_or_zero", "sign_like", "reversed"])
def test_torch_piecewise_with_constant_pieces(name: str) -> None:
    pytest.importorskip("torch")
    expr = CONSTANT_PIECES[name]
    cols = points()
    np.testing.assert_array_equal(_torch_run([expr], cols).numpy()[:, 0],
                                  run_numpy([expr], cols)[:, 0])


def test_torch_piecewise_with_constant_one_first_is_right() -> None:
    """A first piece equal to 1 (relu's step) or a tensor."""
    pytest.importorskip("torch")
    cols = points()
    for expr in (CONSTANT_PIECES["leaky_relu_derivative"], EXPRESSIONS["step"],
                 EXPRESSIONS["piecewise_last_constant"]):
        np.testing.assert_array_equal(_torch_run([expr], cols).numpy()[:, 0],
                                      run_numpy([expr], cols)[:, 0])


def test_a_correct_piecewise_claim_is_proved_on_the_torch_backend() -> None:
    pytest.importorskip("torch")
    from derive import Claim, Definition, Identity, Variable, check
    from derive.model.ops import abs_, elementwise

    sign = elementwise(lambda a: sp.Piecewise((-1, a < 0), (1, True)))
    identity = Identity("abs_derivative_piecewise", (Variable("x"),),
                        (Definition("a", lambda v: abs_(v.x)),),
                        (Claim(lambda v: sign(v.x), wrt="x"),))
    assert check(identity, backend="numpy", samples=16, seed=0).verdict == "proved"
    assert check(identity, backend="torch", samples=16, seed=0).verdict == "proved"


def test_torch_heaviside_and_piecewise_at_the_kinks() -> None:
    torch = pytest.importorskip("torch")
    tb = backends.get("torch")
    prog = compile_program([sp.Heaviside(x), sp.Piecewise((1, x > 0), (0, True)), sp.Max(0, x)], [x])
    values = tb.run(prog, [torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)])
    stacked = tb.stack(values, (3,))
    assert stacked.dtype == torch.float64
    np.testing.assert_array_equal(stacked.numpy(), [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 1.0, 2.0]])


def test_torch_constants_only_outputs_are_broadcast_by_stack() -> None:
    torch = pytest.importorskip("torch")
    tb = backends.get("torch")
    prog = compile_program([sp.Integer(3), x, sp.Rational(1, 4)], [x])
    out = tb.run(prog, [torch.tensor([1.0, 2.0], dtype=torch.float64)])
    stacked = tb.stack(out, (2,))
    assert stacked.shape == (2, 3) and stacked.dtype == torch.float64
    np.testing.assert_array_equal(stacked.numpy(), [[3.0, 1.0, 0.25], [3.0, 2.0, 0.25]])
    only = tb.stack(tb.run(compile_program([sp.Integer(1), sp.Integer(2)], [x]),
                           [torch.zeros(4, dtype=torch.float64)]), (4,))
    assert only.shape == (4, 2) and only.dtype == torch.float64
    assert tb.stack([], (3,)).shape == (3, 0)


def test_torch_from_and_to_numpy() -> None:
    torch = pytest.importorskip("torch")
    tb = backends.get("torch")
    t = tb.from_numpy(np.array([1.5, 2.5]))
    assert t.dtype == torch.float64
    assert tb.from_numpy(np.array([1, 2])).dtype == torch.int64
    np.testing.assert_array_equal(tb.to_numpy(t), [1.5, 2.5])


def test_torch_program_is_differentiable_by_autograd() -> None:
    torch = pytest.importorskip("torch")
    tb = backends.get("torch")
    prog = compile_program([1 / (1 + sp.exp(-x))], [x])
    leaf = torch.tensor([-1.0, 0.0, 2.5], dtype=torch.float64, requires_grad=True)
    (s,) = tb.run(prog, [leaf])
    (g,) = torch.autograd.grad(s.sum(), leaf)
    sd = s.detach()
    torch.testing.assert_close(g, sd * (1 - sd), rtol=1e-15, atol=1e-16)


def test_torch_max_of_tensor_and_constant_keeps_float64() -> None:
    torch = pytest.importorskip("torch")
    tb = backends.get("torch")
    prog = compile_program([sp.Max(0, x), sp.Min(x, sp.Rational(1, 2))], [x])
    a, b = tb.run(prog, [torch.tensor([-1.0, 3.0], dtype=torch.float64)])
    assert a.dtype == b.dtype == torch.float64
    assert a.tolist() == [0.0, 3.0] and b.tolist() == [-1.0, 0.5]


def test_torch_cuda_matches_numpy() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch.cuda.is_available() is False: no CUDA device for the torch backend")
    cols = points()
    exprs = [EXPRESSIONS[n] for n in NAMES]
    got = _torch_run(exprs, cols, device="cuda")
    assert got.device.type == "cuda" and got.dtype == torch.float64
    assert got.shape == (cols.shape[0], len(exprs))
    np.testing.assert_allclose(got.cpu().numpy(), run_numpy(exprs, cols), rtol=1e-13, atol=1e-14)


def test_nested_constants_are_folded_before_common_subexpressions() -> None:
    # SymPy's cse re-evaluated this nested constant on every sort: 50 s per compile before folding
    import time

    import sympy as sp

    from derive.numeric.backends import compile_program, get
    from derive.numeric.backends.program import fold_constants

    x = sp.Symbol("x", real=True)
    sig = lambda a: 1 / (1 + sp.exp(-a))  # noqa: E731
    const = sp.sqrt(sig((sig(sp.Rational(1, 2)) + sp.Rational(1, 2)) ** -2) + sp.Rational(1, 2))
    start = time.perf_counter()
    program = compile_program([const - x, const * x], [x])
    assert time.perf_counter() - start < 5
    value = float(sp.N(const, 30))
    assert get("numpy").run(program, [1.0]) == [pytest.approx(value - 1.0, rel=1e-15),
                                                 pytest.approx(value, rel=1e-15)]
    assert fold_constants(sp.sqrt(-1 + 0 * x) + x) == sp.I + x  # a complex constant is left alone
