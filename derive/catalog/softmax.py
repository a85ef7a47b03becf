"""Softmax and log-softmax Jacobians."""

from ..model.ops import diag, eye, log, outer, size, softmax
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
        family="softmax", source="shared/seeds/002 (softmax and its derivative)",
        description="d p_i/d z_j = p_i (delta_ij - p_j), i.e. diag(p) - p p^T",
    ),
    Identity(
        "log_softmax_gradient",
        variables=(Variable("z", ("n",)),),
        definitions=(Definition("p", lambda v: softmax(v.z), r"\operatorname{softmax}(z)"),
                     Definition("l", lambda v: log(v.p), r"\log p")),
        claims=(Claim(lambda v: eye(size(v.p)) - v.p[None, :], wrt="z",
                      text=r"\delta_{ij} - p_j"),),
        sizes=SIZES,
        references=(Reference("F.log_softmax", lambda z: F().log_softmax(z, -1)),),
        family="softmax", source="shared/seeds/002 (log_softmax in F.cross_entropy)",
        description="d log p_i/d z_j = delta_ij - p_j",
    ),
)
