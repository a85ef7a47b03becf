"""Linear models: a dot product, one-sample squared error, linear regression."""

from ..model.ops import dot, mean
from ..model.spec import Claim, Definition, Identity, Reference, Variable
from ._torch import F, torch

IDENTITIES = (
    Identity(
        "dot_product_gradient",
        variables=(Variable("x", ("n",)), Variable("w", ("n",))),
        definitions=(Definition("y", lambda v: dot(v.x, v.w), r"x \cdot w"),),
        claims=(Claim(lambda v: v.w, wrt="x", text="w"), Claim(lambda v: v.x, wrt="w", text="x")),
        sizes=({"n": 3}, {"n": 5}),
        references=(Reference("torch.dot", lambda x, w: torch().dot(x, w)),),
        family="linear", source="introductory PyTorch tutorial, day 4 (gradient descent): gradients with torch.autograd.grad, y = x @ w",
        description=r"$y = x \cdot w$: $\partial y/\partial x = w$, $\partial y/\partial w = x$",
    ),
    Identity(
        "linear_model_gradient",
        variables=(Variable("x"), Variable("y"), Variable("w")),
        definitions=(Definition("y_hat", lambda v: v.x * v.w, "x w"),
                     Definition("loss", lambda v: (v.y_hat - v.y) ** 2, r"(\hat y - y)^2")),
        claims=(Claim(lambda v: 2 * v.x * (v.x * v.w - v.y), wrt="w", text="2x(xw - y)"),),
        references=(Reference("(x*w - y)**2 in torch", lambda x, y, w: (x * w - y) ** 2),),
        family="linear", source="notes on Dive into Deep Learning, 2.5 (backpropagation and automatic differentiation): the linear model y = x w, loss (x w - y)^2",
        description=r"$d(xw - y)^2/dw = 2x(xw - y)$",
    ),
    Identity(
        "linear_regression_gradient",
        variables=(Variable("x", ("n",)), Variable("y", ("n",)), Variable("w")),
        definitions=(Definition("J", lambda v: mean((v.w * v.x - v.y) ** 2),
                                r"\frac{1}{n}\sum_i (w x_i - y_i)^2"),),
        claims=(Claim(lambda v: mean(2 * v.w * v.x**2 - 2 * v.x * v.y), wrt="w",
                      text=r"\frac{1}{n}\sum_i (2 w x_i^2 - 2 x_i y_i)"),),
        sizes=({"n": 3}, {"n": 6}),
        references=(Reference("F.mse_loss", lambda x, y, w: F().mse_loss(w * x, y)),),
        family="linear", source="introductory PyTorch tutorial 05 (the gradient descent algorithm): linear regression by hand, gradient(x, y, w) = mean(2wx^2 - 2xy)",
        description=r"$\frac{d}{dw} \frac{1}{n}\sum_i (w x_i - y_i)^2 = \frac{1}{n}\sum_i (2 w x_i^2 - 2 x_i y_i)$",
    ),
)
