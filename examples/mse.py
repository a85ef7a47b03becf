"""Mean squared error of 9, reproducing shared/seeds/002 (section 4(1), F.mse_loss).

The seed computes F.mse_loss(torch.ones(3, 3), w @ x) with x = torch.ones(2, 3) and
w = torch.full([3, 2], 2.), so w @ x is a 3x3 matrix of 4s and the loss is (1 - 4)^2 = 9.
The catalog's `mse_gradient` works on vectors, so both 3x3 matrices are flattened to n = 9;
its claim 2 (y_hat - y) / n is compared with torch autograd of F.mse_loss.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F

from derive.numeric.callables import make_claim, make_forward
from derive.catalog import get

SIZES = {"n": 9}
SEED_MSE = 9.0  # the seed prints tensor(9.)


def main() -> int:
    x = np.ones((2, 3))
    w = np.full((3, 2), 2.0)
    y_hat = np.ones((3, 3))  # F.mse_loss's input
    y = w @ x  # F.mse_loss's target: all 4s
    identity = get("mse_gradient")
    mse = float(make_forward(identity, sizes=SIZES)(y_hat=y_hat.ravel(), y=y.ravel()))
    grad_claim = make_claim(identity, wrt="y_hat", sizes=SIZES)(y_hat=y_hat.ravel(), y=y.ravel())

    y_hat_t = torch.ones(3, 3, dtype=torch.float64, requires_grad=True)
    mse_torch = F.mse_loss(y_hat_t, torch.tensor(w) @ torch.tensor(x))
    (grad_torch,) = torch.autograd.grad(mse_torch, y_hat_t)

    print(f"w @ x =\n{y}")
    print(f"catalog forward mean((y_hat - y)^2) at n = 9 = {mse}")
    print(f"torch F.mse_loss(torch.ones(3, 3), w @ x)   = {mse_torch.item()}")
    print(f"claimed gradient 2 (y_hat - y) / n  = {np.array2string(grad_claim, precision=6)}")
    print(f"torch autograd (flattened)          = "
          f"{np.array2string(grad_torch.numpy().ravel(), precision=6)}")
    grad_err = float(np.abs(grad_claim - grad_torch.numpy().ravel()).max())
    print(f"max |claim - autograd| = {grad_err:.2e}")

    ok = mse == SEED_MSE and mse_torch.item() == SEED_MSE and grad_err < 1e-15
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
