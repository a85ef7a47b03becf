"""Functions the seeds optimise by gradient descent: x^2 + y^2 and Himmelblau's function."""

from ..model.spec import Claim, Definition, Identity, Reference, Variable


def _himmelblau(x, y):  # noqa: ANN001, ANN202 - works on symbols and on tensors alike
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


IDENTITIES = (
    Identity(
        "square_sum_gradient",
        variables=(Variable("x"), Variable("y")),
        definitions=(Definition("z", lambda v: v.x**2 + v.y**2, "x^2 + y^2"),),
        claims=(Claim(lambda v: 2 * v.x, wrt="x", text="2x"), Claim(lambda v: 2 * v.y, wrt="y", text="2y")),
        references=(Reference("x**2 + y**2 in torch", lambda x, y: x**2 + y**2),),
        family="optimisation", source="tutorial 13, gradients by backpropagation on a computational graph: z = x^2 + y^2, backward gives (2x, 2y)",
        description=r"$z = x^2 + y^2$: $\nabla z = (2x, 2y)$",
    ),
    Identity(
        "himmelblau_gradient",
        variables=(Variable("x"), Variable("y")),
        definitions=(Definition("f", lambda v: _himmelblau(v.x, v.y),
                                "(x^2 + y - 11)^2 + (x + y^2 - 7)^2"),),
        claims=(Claim(lambda v: 4 * v.x * (v.x**2 + v.y - 11) + 2 * (v.x + v.y**2 - 7), wrt="x",
                      text="4x(x^2 + y - 11) + 2(x + y^2 - 7)"),
                Claim(lambda v: 2 * (v.x**2 + v.y - 11) + 4 * v.y * (v.x + v.y**2 - 7), wrt="y",
                      text="2(x^2 + y - 11) + 4y(x + y^2 - 7)")),
        references=(Reference("himmelblau in torch (the seed's function)", _himmelblau),),
        family="optimisation", source="introductory PyTorch tutorial notes 13 (gradient operations) and day 4 (gradient descent): Himmelblau's function minimised with Adam",
        description=r"the gradient of Himmelblau's function $f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2$",
    ),
)
