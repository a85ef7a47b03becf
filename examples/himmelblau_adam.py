"""Adam on Himmelblau's function, reproducing shared/seeds/000 and shared/seeds/002 (section 5).

The seeds run torch.optim.Adam(lr=1e-3) for 20000 steps on
f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2: from (-4, 0) it reaches (-3.7793, -3.2832)
(seed 002 prints x = [-3.7793102264404297, -3.2831859588623047]); from (1, 0) it reaches (3, 2).
Here the gradient fed to a hand-written Adam (numpy, float64, torch's defaults: betas
(0.9, 0.999), eps 1e-8) is the catalog's `himmelblau_gradient` claim (wrt x and wrt y); the
run is cross-checked against torch.optim.Adam with autograd (float64), and the claim is shown
to vanish at the four minima. With --float32 the torch loop is also run in the seeds' float32,
which lands on the bits seed 002 prints.
"""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np
import torch

from derive.numeric.callables import make_claim, make_forward
from derive.catalog import get

LR, STEPS, BETAS, EPS = 1e-3, 20000, (0.9, 0.999), 1e-8
STARTS = np.array([[-4.0, 0.0], [1.0, 0.0]])
EXPECTED = np.array([[-3.7793, -3.2832], [3.0, 2.0]])  # the seeds' end points, 4 decimals
SEED_002_FLOAT32 = [-3.7793102264404297, -3.2831859588623047]  # shown with --float32
MINIMA = np.array([[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]])


def adam_numpy(grad: Callable[[np.ndarray], np.ndarray], start: np.ndarray) -> np.ndarray:
    """torch.optim.Adam's update (no weight decay, no amsgrad), elementwise, in numpy."""
    p, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
    for step in range(1, STEPS + 1):
        g = grad(p)
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g * g
        denom = np.sqrt(v) / np.sqrt(1 - BETAS[1] ** step) + EPS
        p = p - (LR / (1 - BETAS[0] ** step)) * m / denom
    return p


def adam_torch(start: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """The seeds' loop: torch.optim.Adam with autograd (all starts at once; Adam is elementwise)."""
    p = torch.tensor(start, dtype=dtype, requires_grad=True)
    optimizer = torch.optim.Adam([p], lr=LR, foreach=False)
    for _ in range(STEPS):
        x, y = p.unbind(1)
        f = ((x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2).sum()
        optimizer.zero_grad()
        f.backward()
        optimizer.step()
    return p.detach().numpy().astype(np.float64)


def main() -> int:
    identity = get("himmelblau_gradient")
    f = make_forward(identity)
    claim_x, claim_y = make_claim(identity, wrt="x"), make_claim(identity, wrt="y")

    def grad(p: np.ndarray) -> np.ndarray:  # rows are points (x, y); batched over the rows
        return np.stack([claim_x(x=p[:, 0], y=p[:, 1]), claim_y(x=p[:, 0], y=p[:, 1])], axis=1)

    ends = adam_numpy(grad, STARTS)
    ends_torch = adam_torch(STARTS, torch.float64)
    ok = True
    for start, end, ref, want in zip(STARTS, ends, ends_torch, EXPECTED):
        value = float(f(x=end[0], y=end[1]))
        print(f"start ({start[0]:g}, {start[1]:g}): catalog-gradient Adam -> "
              f"({end[0]:.4f}, {end[1]:.4f}), f = {value:.2e}")
        print(f"    numpy Adam, catalog claim   -> ({end[0]:.10f}, {end[1]:.10f})")
        print(f"    torch.optim.Adam + autograd -> ({ref[0]:.10f}, {ref[1]:.10f})")
        ok &= bool(np.all(np.round(end, 4) == want) and np.abs(end - ref).max() < 1e-9)

    if "--float32" in sys.argv:  # the seeds' dtype; adds a few seconds
        end32 = adam_torch(STARTS, torch.float32)[0]
        print(f"torch float32 from (-4, 0): {end32.tolist()}; equals seed 002's printed "
              f"{SEED_002_FLOAT32}: {bool(np.all(end32 == np.float32(SEED_002_FLOAT32)))}")
    print("claimed gradient at the four minima:")
    g = grad(MINIMA)
    for (x, y), (gx, gy) in zip(MINIMA, g):
        print(f"    ({x:9.6f}, {y:9.6f}): (df/dx, df/dy) = ({gx: .2e}, {gy: .2e})")
    ok &= bool(np.abs(g).max() < 1e-3)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
