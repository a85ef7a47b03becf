"""Losses: mean squared error, binary cross-entropy, cross-entropy (log_softmax + nll)."""

from ..model.domains import BINARY, UNIT_INTERVAL, Label
from ..model.ops import log, log_softmax, mean, sigmoid, size, softmax, sum_
from ..model.spec import Claim, Definition, Identity, Reference, Variable
from ._torch import F, torch

SEED = "introductory PyTorch tutorial, day 4 (gradient descent): the loss functions F.mse_loss, F.binary_cross_entropy and F.cross_entropy"
BATCH = ({"B": 2, "k": 4}, {"B": 3, "k": 3})


def _bce(p, y):  # noqa: ANN001, ANN202 - symbol arrays in, symbol out
    return -mean(y * log(p) + (1 - y) * log(1 - p))


def _cross_entropy(v):  # noqa: ANN001, ANN202
    return -mean(sum_(v.t * log(v.p), axis=-1))


IDENTITIES = (
    Identity(
        "mse_gradient",
        variables=(Variable("y_hat", ("n",)), Variable("y", ("n",))),
        definitions=(Definition("L", lambda v: mean((v.y_hat - v.y) ** 2),
                                r"\frac{1}{n}\sum_i (\hat y_i - y_i)^2"),),
        claims=(Claim(lambda v: 2 * (v.y_hat - v.y) / size(v.y), wrt="y_hat",
                      text=r"\frac{2}{n}(\hat y - y)"),),
        sizes=({"n": 3}, {"n": 9}),
        references=(Reference("F.mse_loss", lambda y_hat, y: F().mse_loss(y_hat, y)),),
        family="losses", source=SEED,
        description=r"$\frac{\partial}{\partial \hat y} \frac{1}{n}\sum_i (\hat y_i - y_i)^2 = \frac{2}{n}(\hat y - y)$",
    ),
    Identity(
        "bce_definition",
        variables=(Variable("p", ("n",), UNIT_INTERVAL), Variable("y", ("n",), BINARY)),
        definitions=(Definition("l", lambda v: -(v.y * log(v.p) + (1 - v.y) * log(1 - v.p)),
                                r"-(y_i \log p_i + (1-y_i)\log(1-p_i))"),
                     Definition("L", lambda v: mean(v.l), r"\frac{1}{n}\sum_i \ell_i")),
        claims=(Claim(lambda v: _bce(v.p, v.y), text=r"-\frac{1}{n}\sum_i y_i\log p_i + (1-y_i)\log(1-p_i)"),),
        sizes=({"n": 1}, {"n": 4}),
        references=(Reference("nn.BCELoss", lambda p, y: torch().nn.BCELoss()(p, y)),
                    Reference("F.binary_cross_entropy", lambda p, y: F().binary_cross_entropy(p, y))),
        family="losses", source=SEED,
        description=r"nn.BCELoss $=$ F.binary\_cross\_entropy $= -\frac{1}{n}\sum_i \left(y_i \log p_i + (1 - y_i) \log(1 - p_i)\right)$",
    ),
    Identity(
        "bce_gradient_probability",
        variables=(Variable("p", ("n",), UNIT_INTERVAL), Variable("y", ("n",), BINARY)),
        definitions=(Definition("L", lambda v: _bce(v.p, v.y), r"\operatorname{BCE}(p, y)"),),
        claims=(Claim(lambda v: (v.p - v.y) / (v.p * (1 - v.p)) / size(v.p), wrt="p",
                      text=r"\frac{1}{n}\frac{p - y}{p(1-p)}"),),
        sizes=({"n": 1}, {"n": 4}),
        references=(Reference("F.binary_cross_entropy", lambda p, y: F().binary_cross_entropy(p, y)),),
        family="losses", source=SEED,
        description=r"$\partial L/\partial p = \frac{1}{n} \frac{p - y}{p(1 - p)}$",
    ),
    Identity(
        "bce_gradient_logit",
        variables=(Variable("z", ("n",)), Variable("y", ("n",), BINARY)),
        definitions=(Definition("p", lambda v: sigmoid(v.z), r"\sigma(z)"),
                     Definition("L", lambda v: _bce(v.p, v.y), r"\operatorname{BCE}(p, y)")),
        claims=(Claim(lambda v: (v.p - v.y) / size(v.p), wrt="z", text=r"\frac{1}{n}(\sigma(z) - y)"),),
        sizes=({"n": 1}, {"n": 4}),
        references=(Reference("F.binary_cross_entropy_with_logits",
                              lambda z, y: F().binary_cross_entropy_with_logits(z, y)),),
        family="losses", source=SEED,
        description=r"$p = \sigma(z)$: $\partial L/\partial z = \sigma(z) - y$ per example (the mean over $n$)",
    ),
    Identity(
        "cross_entropy_definition",
        variables=(Variable("z", ("B", "k")), Variable("t", ("B",), Label("k"))),
        definitions=(Definition("p", lambda v: softmax(v.z), r"\operatorname{softmax}(z)"),
                     Definition("L", _cross_entropy,
                                r"-\frac{1}{B}\sum_b \sum_i \operatorname{onehot}(t)_{bi} \log p_{bi}")),
        claims=(Claim(lambda v: -mean(sum_(v.t * log_softmax(v.z), axis=-1)),
                      text=r"\operatorname{nll}(\operatorname{log\_softmax}(z), t)"),),
        sizes=BATCH,
        references=(Reference("F.cross_entropy", lambda z, t: F().cross_entropy(z, t)),
                    Reference("F.nll_loss(F.log_softmax)",
                              lambda z, t: F().nll_loss(F().log_softmax(z, -1), t)),
                    Reference("nn.CrossEntropyLoss", lambda z, t: torch().nn.CrossEntropyLoss()(z, t))),
        family="losses", source=SEED,
        description=r"F.cross\_entropy $=$ nll\_loss(log\_softmax($z$), $t$) $= -\frac{1}{B}\sum_b \sum_i \operatorname{onehot}(t)_{bi} \log \operatorname{softmax}(z)_{bi}$",
    ),
    Identity(
        "cross_entropy_gradient",
        variables=(Variable("z", ("B", "k")), Variable("t", ("B",), Label("k"))),
        definitions=(Definition("p", lambda v: softmax(v.z), r"\operatorname{softmax}(z)"),
                     Definition("L", _cross_entropy, r"\operatorname{CE}(z, t)")),
        claims=(Claim(lambda v: (v.p - v.t) / size(v.t), wrt="z",
                      text=r"\frac{1}{B}(\operatorname{softmax}(z) - \operatorname{onehot}(t))"),),
        sizes=BATCH,
        references=(Reference("F.cross_entropy", lambda z, t: F().cross_entropy(z, t)),),
        family="losses", source=SEED,
        description=r"$\partial L/\partial z = \frac{1}{B}(\operatorname{softmax}(z) - \operatorname{onehot}(t))$ over a batch of $B$",
    ),
)
