"""Backward passes engineers write by hand for custom ops and fused kernels.

Each forward ends in L = sum(G * output) with G an upstream gradient, so the claimed form is
the vector-Jacobian product a backward kernel computes (dL/dX = the 'grad_input'), and the torch
reference is the library layer itself (F.linear, F.layer_norm, F.batch_norm,
F.scaled_dot_product_attention, F.gelu...): the textbook form is checked against what torch does.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from ..model.domains import Real
from ..errors import SpecError
from ..model.ops import (erf, exp, half, log_sigmoid, logsumexp, mean, outer, sigmoid, size, softmax,
    softplus, sqrt, sum_, tanh)
from ..model.spec import Claim, Definition, Identity, Reference, Variable
from ._torch import F, torch

EPS = sp.Rational(1, 10**5)
"""The eps of F.layer_norm and F.batch_norm (1e-5), exact."""
GELU_C = sp.Rational(44715, 10**6)
"""The cubic coefficient of the tanh approximation of GELU (0.044715)."""


def gelu_exact(x: Any) -> Any:
    """x Phi(x) = x (1 + erf(x / sqrt 2)) / 2."""
    return half * x * (1 + erf(x / sp.sqrt(2)))


def gelu_tanh(x: Any) -> Any:
    """The tanh approximation: x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2."""
    return half * x * (1 + tanh(sp.sqrt(2 / sp.pi) * (x + GELU_C * x**3)))


def gelu_exact_derivative(x: Any) -> Any:
    """Phi(x) + x phi(x)."""
    return half * (1 + erf(x / sp.sqrt(2))) + x * exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)


def gelu_tanh_derivative(x: Any) -> Any:
    """(1 + tanh u)/2 + x (1 - tanh^2 u) u'/2 with u = sqrt(2/pi)(x + 0.044715 x^3)."""
    k = sp.sqrt(2 / sp.pi)
    t = tanh(k * (x + GELU_C * x**3))
    return half * (1 + t) + half * x * (1 - t**2) * k * (1 + 3 * GELU_C * x**2)


def _upstream(v: Any, out: Any) -> Any:
    return sum_(v.G * out)


def _layer_norm_dx(v: Any) -> Any:
    """(1/sigma) (g - mean(g) - x_hat mean(g x_hat)) with g = G gamma."""
    g = v.G * v.gamma
    return (g - mean(g) - v.x_hat * mean(g * v.x_hat)) / v.sigma


def _batch_norm_dx(v: Any) -> Any:
    """(1/(B sigma)) (B g - sum_b g - x_hat sum_b(g x_hat)) with g = G gamma, per feature."""
    g = v.G * v.gamma[None, :]
    B = size(v.X, 0)
    return (B * g - sum_(g, axis=0, keepdims=True)
            - v.X_hat * sum_(g * v.X_hat, axis=0, keepdims=True)) / (B * v.sigma[None, :])


def _attention(Q: Any, K: Any, V: Any, G: Any) -> Any:
    return (G * F().scaled_dot_product_attention(Q[None], K[None], V[None])[0]).sum()


def _attention_dS(v: Any) -> Any:
    """dS = P * (dP - rowsum(dP * P)) with dP = G V^T: the softmax backward, row by row."""
    dP = v.G @ v.V.T
    return v.P * (dP - sum_(dP * v.P, axis=-1, keepdims=True))


UNIT_NORMAL = Real(scale=1.0)
GELU_SOURCE = "Hendrycks & Gimpel, Gaussian Error Linear Units (2016); torch.nn.GELU"
NORM_SOURCE = ("Ba et al., Layer Normalization (2016); Ioffe & Szegedy, Batch Normalization (2015); "
               "the compact backward as in fused kernels")

IDENTITIES = (
    Identity(
        "linear_layer_backward",
        variables=(Variable("X", ("B", "n")), Variable("W", ("m", "n")), Variable("b", ("m",)),
                   Variable("G", ("B", "m"))),
        definitions=(Definition("Y", lambda v: v.X @ v.W.T + v.b[None, :], r"X W^\top + b"),
                     Definition("L", lambda v: _upstream(v, v.Y), r"\sum G \odot Y")),
        claims=(Claim(lambda v: v.G.T @ v.X, wrt="W", text=r"G^\top X"),
                Claim(lambda v: sum_(v.G, axis=0), wrt="b", text=r"\sum_b G_{b\cdot}"),
                Claim(lambda v: v.G @ v.W, wrt="X", text="G W")),
        sizes=({"B": 2, "n": 3, "m": 2},),
        references=(Reference("F.linear", lambda X, W, b, G: (G * F().linear(X, W, b)).sum()),),
        family="layers", source="torch.nn.Linear (y = x W^T + b), batched",
        description=r"linear layer backward: $dW = G^\top X$ (the sum of $\delta x^\top$), $db = \sum_b G_{b\cdot}$, $dX = G W$",
    ),
    Identity(
        "logsumexp_gradient",
        variables=(Variable("z", ("n",)),),
        definitions=(Definition("f", lambda v: logsumexp(v.z), r"\log \sum_i e^{z_i}"),),
        claims=(Claim(lambda v: softmax(v.z), wrt="z", text=r"\operatorname{softmax}(z)"),),
        sizes=({"n": 3},),
        references=(Reference("torch.logsumexp", lambda z: torch().logsumexp(z, -1)),),
        family="layers", source="standard; torch.logsumexp",
        description=r"$\partial \operatorname{logsumexp}(z)/\partial z = \operatorname{softmax}(z)$",
    ),
    Identity(
        "softplus_derivative",
        variables=(Variable("x"),),
        definitions=(Definition("s", lambda v: softplus(v.x), r"\log(1 + e^x)"),),
        claims=(Claim(lambda v: sigmoid(v.x), wrt="x", text=r"\sigma(x)"),),
        references=(Reference("F.softplus", lambda x: F().softplus(x)),),
        family="layers", source="standard; torch.nn.Softplus",
        description=r"$d \operatorname{softplus}(x)/dx = \sigma(x)$",
    ),
    Identity(
        "log_sigmoid_derivative",
        variables=(Variable("x"),),
        definitions=(Definition("s", lambda v: log_sigmoid(v.x), r"\log \sigma(x)"),),
        claims=(Claim(lambda v: sigmoid(-v.x), wrt="x", text=r"\sigma(-x) = 1 - \sigma(x)"),),
        references=(Reference("F.logsigmoid", lambda x: F().logsigmoid(x)),),
        family="layers", source="standard; torch.nn.LogSigmoid",
        description=r"$d \log \sigma(x)/dx = \sigma(-x) = 1 - \sigma(x)$ (both written stably: no $1 - \sigma$ cancels)",
    ),
    Identity(
        "gelu_derivative",
        variables=(Variable("x"),),
        definitions=(Definition("g", lambda v: gelu_exact(v.x), r"x \Phi(x)"),),
        claims=(Claim(lambda v: gelu_exact_derivative(v.x), wrt="x", text=r"\Phi(x) + x \varphi(x)"),),
        references=(Reference("F.gelu", lambda x: F().gelu(x)),),
        family="layers", source=GELU_SOURCE,
        description=r"exact GELU $x \Phi(x)$: its derivative is $\Phi(x) + x \varphi(x)$",
    ),
    Identity(
        "gelu_tanh_derivative",
        variables=(Variable("x"),),
        definitions=(Definition("g", lambda v: gelu_tanh(v.x),
                                r"\tfrac{x}{2}(1 + \tanh(\sqrt{2/\pi}(x + 0.044715 x^3)))"),),
        claims=(Claim(lambda v: gelu_tanh_derivative(v.x), wrt="x",
                      text=r"\tfrac12(1 + \tanh u) + \tfrac{x}{2}(1 - \tanh^2 u) u'"),),
        references=(Reference("F.gelu(approximate='tanh')", lambda x: F().gelu(x, approximate="tanh")),),
        family="layers", source=GELU_SOURCE,
        description=r"tanh-approximate GELU $\frac{x}{2}(1 + \tanh(\sqrt{2/\pi}(x + 0.044715 x^3)))$: its own derivative (not the exact GELU's)",
    ),
    Identity(
        "layer_norm_backward",
        variables=(Variable("x", ("n",)), Variable("gamma", ("n",)), Variable("beta", ("n",)),
                   Variable("G", ("n",))),
        definitions=(Definition("mu", lambda v: mean(v.x), r"\frac1n \sum_i x_i"),
                     Definition("d", lambda v: v.x - v.mu, r"x - \mu"),
                     Definition("sigma", lambda v: sqrt(mean(v.d**2) + EPS),
                                r"\sqrt{\frac1n \sum_i d_i^2 + \epsilon}"),
                     Definition("x_hat", lambda v: v.d / v.sigma, r"d/\sigma"),
                     Definition("y", lambda v: v.gamma * v.x_hat + v.beta, r"\gamma \hat x + \beta"),
                     Definition("L", lambda v: _upstream(v, v.y), r"\sum_i G_i y_i")),
        claims=(Claim(_layer_norm_dx, wrt="x",
                      text=r"\frac{1}{\sigma}(g - \bar g - \hat x\, \overline{g \hat x}),\ g = G\gamma"),
                Claim(lambda v: v.G * v.x_hat, wrt="gamma", text=r"G \odot \hat x"),
                Claim(lambda v: v.G, wrt="beta", text="G")),
        sizes=({"n": 3},),
        references=(Reference("F.layer_norm", lambda x, gamma, beta, G: (
            G * F().layer_norm(x, x.shape, gamma, beta, eps=1e-5)).sum()),),
        family="layers", source=NORM_SOURCE,
        description=r"layer norm backward: $dx = (g - \operatorname{mean}(g) - \hat x \operatorname{mean}(g \hat x)) / \sigma$, $g = G \gamma$",
    ),
    Identity(
        "batch_norm_backward",
        variables=(Variable("X", ("B", "n")), Variable("gamma", ("n",)), Variable("beta", ("n",)),
                   Variable("G", ("B", "n"))),
        definitions=(Definition("mu", lambda v: mean(v.X, axis=0), r"\frac1B \sum_b X_{b\cdot}"),
                     Definition("D", lambda v: v.X - v.mu[None, :], r"X - \mu"),
                     Definition("sigma", lambda v: sqrt(mean(v.D**2, axis=0) + EPS),
                                r"\sqrt{\frac1B \sum_b D_{b\cdot}^2 + \epsilon}"),
                     Definition("X_hat", lambda v: v.D / v.sigma[None, :], r"D/\sigma"),
                     Definition("Y", lambda v: v.gamma[None, :] * v.X_hat + v.beta[None, :],
                                r"\gamma \hat X + \beta"),
                     Definition("L", lambda v: _upstream(v, v.Y), r"\sum G \odot Y")),
        claims=(Claim(_batch_norm_dx, wrt="X",
                      text=r"\frac{1}{B\sigma}(B g - \sum_b g - \hat X \sum_b g \hat X),\ g = G\gamma"),
                Claim(lambda v: sum_(v.G * v.X_hat, axis=0), wrt="gamma", text=r"\sum_b G \odot \hat X"),
                Claim(lambda v: sum_(v.G, axis=0), wrt="beta", text=r"\sum_b G")),
        sizes=({"B": 3, "n": 2},),
        references=(Reference("F.batch_norm (training)", lambda X, gamma, beta, G: (
            G * F().batch_norm(X, None, None, gamma, beta, training=True, eps=1e-5)).sum()),),
        family="layers", source=NORM_SOURCE,
        description=r"batch norm backward (batch statistics): "
                    r"$dX = (B g - \sum_b g - \hat X \sum_b (g \hat X)) / (B \sigma)$, $g = G \gamma$",
    ),
    Identity(
        "attention_backward",
        # unit-variance queries and keys: logits of variance about 1, the regime the 1/sqrt(d)
        # scaling is for (at scale 2 the softmax saturates and dS is mostly cancellation)
        variables=(Variable("Q", ("n", "d"), UNIT_NORMAL), Variable("K", ("m", "d"), UNIT_NORMAL),
                   Variable("V", ("m", "e")), Variable("G", ("n", "e"))),
        definitions=(Definition("S", lambda v: v.Q @ v.K.T / sqrt(size(v.Q, 1)), r"Q K^\top / \sqrt{d}"),
                     Definition("P", lambda v: softmax(v.S, axis=-1), r"\operatorname{softmax}(S)"),
                     Definition("O", lambda v: v.P @ v.V, "P V"),
                     Definition("L", lambda v: _upstream(v, v.O), r"\sum G \odot O")),
        claims=(Claim(lambda v: _attention_dS(v) @ v.K / sqrt(size(v.Q, 1)), wrt="Q",
                      text=r"dS\, K / \sqrt{d},\ dS = P \odot (G V^\top - \operatorname{rowsum}(G V^\top \odot P))"),
                Claim(lambda v: _attention_dS(v).T @ v.Q / sqrt(size(v.Q, 1)), wrt="K",
                      text=r"dS^\top Q / \sqrt{d}"),
                Claim(lambda v: v.P.T @ v.G, wrt="V", text=r"P^\top G")),
        sizes=({"n": 2, "m": 2, "d": 2, "e": 2},),
        references=(Reference("F.scaled_dot_product_attention", _attention),),
        family="layers", source="Vaswani et al. (2017); the FlashAttention backward (Dao et al., 2022)",
        description=r"attention backward: $dQ = dS\, K/\sqrt{d}$, $dK = dS^\top Q/\sqrt{d}$, $dV = P^\top G$, "
                    r"$dS = P \odot (dP - \operatorname{rowsum}(dP \odot P))$, $dP = G V^\top$",
    ),
)


def _deltas(v: Any, depth: int) -> list[Any]:
    """delta^(L+1) = z^(L+1) - t; delta^l = sigma'(z^l) * (W^(l+1))^T delta^(l+1), as
    sigma' = a (1 - a); returned as [delta^1, ..., delta^(L+1)]."""
    out = [getattr(v, f"z{depth + 1}") - v.t]
    for layer in range(depth, 0, -1):
        a = getattr(v, f"a{layer}")
        out.insert(0, a * (1 - a) * (getattr(v, f"W{layer + 1}").T @ out[0]))
    return out


def mlp_backprop_identity(depth: int, *, sizes: dict[str, int] | None = None) -> Identity:
    """The backprop recurrence through `depth` sigmoid hidden layers and a linear output with
    E = 1/2 ||z - t||^2: dE/dW^l = delta^l (a^(l-1))^T (a^0 = x), for every layer at once."""
    if not isinstance(depth, int) or depth < 1:
        raise SpecError(f"depth must be a positive integer, got {depth!r}")
    widths = sizes or {f"n{i}": 2 + (i % 2) for i in range(depth + 2)}
    variables = [Variable("x", ("n0",))]
    variables += [Variable(f"W{i}", (f"n{i}", f"n{i - 1}")) for i in range(1, depth + 2)]
    variables.append(Variable("t", (f"n{depth + 1}",)))
    definitions = []
    for i in range(1, depth + 2):
        prev = "x" if i == 1 else f"a{i - 1}"
        definitions.append(Definition(f"z{i}", lambda v, i=i, prev=prev: getattr(v, f"W{i}") @ getattr(v, prev),
                                      rf"W^{{({i})}} {prev if i == 1 else f'a^{{({i - 1})}}'}"))
        if i <= depth:
            definitions.append(Definition(f"a{i}", lambda v, i=i: sigmoid(getattr(v, f"z{i}")),
                                          rf"\sigma(z^{{({i})}})"))
    definitions.append(Definition("E", lambda v: half * sum_((getattr(v, f"z{depth + 1}") - v.t) ** 2),
                                  r"\frac12 \lVert z - t \rVert^2"))
    claims = []
    for i in range(1, depth + 2):
        prev = "x" if i == 1 else f"a{i - 1}"
        claims.append(Claim(lambda v, i=i, prev=prev: outer(_deltas(v, depth)[i - 1], getattr(v, prev)),
                            wrt=f"W{i}", text=rf"\delta^{{({i})}} ({prev if i == 1 else f'a^{{({i - 1})}}'})^\top"))

    def reference(x: Any, *rest: Any) -> Any:
        *weights, t = rest
        h = x
        for W in weights[:-1]:
            h = torch().sigmoid(W @ h)
        return 0.5 * ((weights[-1] @ h - t) ** 2).sum()

    return Identity(
        f"mlp_backprop_depth{depth}", variables=tuple(variables), definitions=tuple(definitions),
        claims=tuple(claims), sizes=(widths,),
        references=(Reference(f"{depth} sigmoid layers + linear output + 0.5 * squared error in torch",
                              reference),),
        family="layers", source="Rumelhart, Hinton & Williams (1986); any depth",
        description=(f"backprop through {depth} sigmoid hidden layers: "
                     r"$\delta^{(l)} = \sigma'(z^{(l)}) \odot (W^{(l+1)})^\top \delta^{(l+1)}$, "
                     r"$\partial E/\partial W^{(l)} = \delta^{(l)} (a^{(l-1)})^\top$"))


IDENTITIES = (*IDENTITIES, mlp_backprop_identity(2))
