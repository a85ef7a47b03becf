"""Activation functions and their derivatives (sigmoid, tanh, relu)."""

from ..model.ops import relu, sigmoid, step, tanh
from ..model.spec import Claim, Definition, Identity, Reference, Variable
from ._torch import F, torch

SOURCE = "introductory PyTorch tutorial, day 4 (gradient descent): the activation functions sigmoid, tanh and relu; standard"

IDENTITIES = (
    Identity(
        "sigmoid_derivative",
        variables=(Variable("x"),),
        definitions=(Definition("s", lambda v: sigmoid(v.x), r"\sigma(x) = 1/(1+e^{-x})"),),
        claims=(Claim(lambda v: v.s * (1 - v.s), wrt="x", text=r"\sigma(x)(1-\sigma(x))"),),
        references=(Reference("torch.sigmoid", lambda x: torch().sigmoid(x)),),
        family="activations", source=SOURCE,
        description=r"$d\sigma/dx = \sigma(x)\,(1 - \sigma(x))$",
    ),
    Identity(
        "tanh_derivative",
        variables=(Variable("x"),),
        definitions=(Definition("a", lambda v: tanh(v.x), r"\tanh x"),),
        claims=(Claim(lambda v: 1 - v.a**2, wrt="x", text=r"1-\tanh^2 x"),),
        references=(Reference("torch.tanh", lambda x: torch().tanh(x)),),
        family="activations", source=SOURCE,
        description=r"$d\tanh x/dx = 1 - \tanh^2 x$",
    ),
    Identity(
        "relu_derivative",
        variables=(Variable("x"),),
        definitions=(Definition("r", lambda v: relu(v.x), r"\max(0, x)"),),
        claims=(Claim(lambda v: step(v.x), wrt="x", text=r"\mathbb{1}[x>0]"),),
        references=(Reference("F.relu", lambda x: F().relu(x)),),
        family="activations", source=SOURCE,
        description=r"$d\operatorname{relu}(x)/dx = 1$ if $x > 0$, else $0$ (not differentiable at $0$: the kink is reported)",
    ),
)
