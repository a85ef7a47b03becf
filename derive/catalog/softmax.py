"""Softmax and log-softmax Jacobians."""

from ..model.ops import diag, eye, log_softmax, outer, size, softmax
from ..model.spec import Claim, Definition, Identity, Reference, Variable
from ._torch import F, torch

SIZES = ({"n": 3}, {"n": 5})

IDENTITIES = (
    Identity(
        "softmax_jacobian",
        variables=(Variable("z", ("n",)),),
        definitions=(Definition("p", lambda v: softmax(v.z), r"p_i = e^{z_i} / \sum_j e^{z_j}"),),
        claims=(Claim(lambda v: diag(v.p) - outer(v.p, v.p), wrt="z",
                      text=r"p_i(\delta_{ij} - p_j)"),),
        sizes=SIZES,
        references=(Reference("torch.softmax", lambda z: torch().softmax(z, -1)),),
        family="softmax", source="introductory PyTorch tutorial, day 4 (gradient descent): softmax and its derivative",
        description=r"$\partial p_i/\partial z_j = p_i(\delta_{ij} - p_j)$, i.e. $\operatorname{diag}(p) - p p^\top$",
    ),
    Identity(
        "log_softmax_gradient",
        variables=(Variable("z", ("n",)),),
        definitions=(Definition("p", lambda v: softmax(v.z), r"\operatorname{softmax}(z)"),
                     Definition("l", lambda v: log_softmax(v.z), r"\log \operatorname{softmax}(z)")),
        claims=(Claim(lambda v: eye(size(v.p)) - v.p[None, :], wrt="z",
                      text=r"\delta_{ij} - p_j"),),
        sizes=SIZES,
        references=(Reference("F.log_softmax", lambda z: F().log_softmax(z, -1)),),
        family="softmax", source="introductory PyTorch tutorial, day 4 (gradient descent): F.cross_entropy as log_softmax then nll_loss",
        description=r"$\partial \log p_i/\partial z_j = \delta_{ij} - p_j$",
    ),
)
