"""Plain gradient descent on x^2 + y^2, reproducing shared/seeds/004 (梯度下降求最小值).

The seed descends from (3, 4) with lr 0.01 for 100 steps, using the backward pass
(dx, dy) = (2x, 2y), and prints [0.39785866768425965, 0.5304782235790126]. Here the gradient
is the catalog's `square_sum_gradient` claims (wrt x and wrt y); the run is cross-checked
against torch autograd of x^2 + y^2. Both reproduce the seed's digits exactly (each step is
x - 0.01 * (2x) in float64, as in the seed's Python floats).
"""

from __future__ import annotations

import sys

import torch

from derive.numeric.callables import make_claim, make_forward
from derive.catalog import get

SEED_END = (0.39785866768425965, 0.5304782235790126)


def descend_catalog(x: float, y: float, lr: float = 0.01, step_num: int = 100) -> tuple[float, float]:
    identity = get("square_sum_gradient")
    claim_x, claim_y = make_claim(identity, wrt="x"), make_claim(identity, wrt="y")
    for _ in range(step_num):
        dx, dy = float(claim_x(x=x, y=y)), float(claim_y(x=x, y=y))
        x -= lr * dx
        y -= lr * dy
    return x, y


def descend_torch(x0: float, y0: float, lr: float = 0.01, step_num: int = 100) -> tuple[float, float]:
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(y0, dtype=torch.float64, requires_grad=True)
    for _ in range(step_num):
        dx, dy = torch.autograd.grad(x**2 + y**2, [x, y])
        with torch.no_grad():
            x -= lr * dx
            y -= lr * dy
    return x.item(), y.item()


def main() -> int:
    z = float(make_forward(get("square_sum_gradient"))(x=2.0, y=3.0))
    grad = tuple(float(make_claim(get("square_sum_gradient"), wrt=w)(x=2.0, y=3.0)) for w in "xy")
    print(f"at (2, 3): z = {z:g}, claimed gradient = {grad}")  # the seed prints (4, 6)
    end = descend_catalog(3.0, 4.0)
    end_torch = descend_torch(3.0, 4.0)
    print(f"catalog claims  : [{end[0]}, {end[1]}]  ~ ({end[0]:.4f}, {end[1]:.4f})")
    print(f"torch autograd  : [{end_torch[0]}, {end_torch[1]}]")
    print(f"seed 004 prints : [{SEED_END[0]}, {SEED_END[1]}]")
    ok = grad == (4.0, 6.0) and end == SEED_END and end_torch == SEED_END
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
