"""Backpropagation through a sigmoid MLP with E = 1/2 sum (O_k - t_k)^2: the textbook deltas."""

from ..model.domains import UNIT_INTERVAL
from ..model.ops import half, outer, sigmoid, sum_
from ..model.spec import Claim, Definition, Identity, Reference, Variable
from ._torch import torch

SOURCE = "introductory PyTorch tutorial notes 13 (gradient operations): MLP backpropagation, the deltas delta_k and delta_j"


def _delta_k(v):  # noqa: ANN001, ANN202 - delta_k = O_k (1 - O_k)(O_k - t_k)
    return v.O_k * (1 - v.O_k) * (v.O_k - v.t)


def _delta_j(v):  # noqa: ANN001, ANN202 - delta_j = O_j (1 - O_j) sum_k delta_k W_jk
    return v.O_j * (1 - v.O_j) * (v.W_jk @ _delta_k(v))


def _error(v):  # noqa: ANN001, ANN202
    return half * sum_((v.O_k - v.t) ** 2)


def _output_layer(O_j, W_jk, t):  # noqa: ANN001, ANN202, N803
    return 0.5 * ((torch().sigmoid(O_j @ W_jk) - t) ** 2).sum()


def _two_layers(O_i, W_ij, W_jk, t):  # noqa: ANN001, ANN202, N803
    return _output_layer(torch().sigmoid(O_i @ W_ij), W_jk, t)


IDENTITIES = (
    Identity(
        "mlp_output_delta",
        variables=(Variable("O_j", ("J",), UNIT_INTERVAL), Variable("W_jk", ("J", "K")),
                   Variable("t", ("K",), UNIT_INTERVAL)),
        definitions=(Definition("x_k", lambda v: v.O_j @ v.W_jk, r"\sum_j O_j W_{jk}"),
                     Definition("O_k", lambda v: sigmoid(v.x_k), r"\sigma(x_k)"),
                     Definition("E", _error, r"\frac12 \sum_k (O_k - t_k)^2")),
        claims=(Claim(lambda v: outer(v.O_j, _delta_k(v)), wrt="W_jk",
                      text=r"O_j \delta_k,\ \delta_k = O_k(1-O_k)(O_k-t_k)"),),
        sizes=({"J": 3, "K": 2}, {"J": 2, "K": 3}),
        references=(Reference("sigmoid layer + 0.5 * squared error in torch", _output_layer),),
        family="mlp", source=SOURCE,
        description=r"$\partial E/\partial W_{jk} = O_j \delta_k$ with $\delta_k = O_k(1 - O_k)(O_k - t_k)$",
    ),
    Identity(
        "mlp_hidden_delta",
        variables=(Variable("O_i", ("I",), UNIT_INTERVAL), Variable("W_ij", ("I", "J")),
                   Variable("W_jk", ("J", "K")), Variable("t", ("K",), UNIT_INTERVAL)),
        definitions=(Definition("x_j", lambda v: v.O_i @ v.W_ij, r"\sum_i O_i W_{ij}"),
                     Definition("O_j", lambda v: sigmoid(v.x_j), r"\sigma(x_j)"),
                     Definition("x_k", lambda v: v.O_j @ v.W_jk, r"\sum_j O_j W_{jk}"),
                     Definition("O_k", lambda v: sigmoid(v.x_k), r"\sigma(x_k)"),
                     Definition("E", _error, r"\frac12 \sum_k (O_k - t_k)^2")),
        claims=(Claim(lambda v: outer(v.O_i, _delta_j(v)), wrt="W_ij",
                      text=r"O_i \delta_j,\ \delta_j = O_j(1-O_j)\sum_k \delta_k W_{jk}"),
                Claim(lambda v: outer(v.O_j, _delta_k(v)), wrt="W_jk", text=r"O_j \delta_k")),
        sizes=({"I": 2, "J": 3, "K": 2},),
        references=(Reference("two sigmoid layers + 0.5 * squared error in torch", _two_layers),),
        family="mlp", source=SOURCE,
        description=r"$\partial E/\partial W_{ij} = O_i \delta_j$ with $\delta_j = O_j(1 - O_j) \sum_k \delta_k W_{jk}$",
    ),
)
