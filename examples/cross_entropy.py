"""Cross-entropy of two samples, reproducing shared/seeds/002 (section 4(3), F.cross_entropy).

The seed feeds the logits z = [[4,3,2,1],[3,1,4,5]] and labels t = [0, 2] to
F.cross_entropy and reads ce = 0.93. Here the catalog's formulas compute it:
`cross_entropy_definition` (-mean sum onehot(t) log softmax(z)) and its claim
nll(log_softmax(z), t), then `cross_entropy_gradient`'s claim (softmax(z) - onehot(t)) / B
is compared with torch autograd of F.cross_entropy.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F

from derive.numeric.callables import make_claim, make_forward
from derive.catalog import get

SIZES = {"B": 2, "k": 4}
Z = np.array([[4.0, 3.0, 2.0, 1.0], [3.0, 1.0, 4.0, 5.0]])
T = np.array([0, 2])
SEED_CE = 0.9300  # the seed prints ce = 0.93 (tensor(0.9300))


def main() -> int:
    definition = get("cross_entropy_definition")
    ce = float(make_forward(definition, sizes=SIZES)(z=Z, t=T))
    ce_claim = float(make_claim(definition, sizes=SIZES)(z=Z, t=T))
    z_t = torch.tensor(Z, requires_grad=True)
    ce_torch = F.cross_entropy(z_t, torch.tensor(T))
    (grad_torch,) = torch.autograd.grad(ce_torch, z_t)
    grad_claim = make_claim(get("cross_entropy_gradient"), wrt="z", sizes=SIZES)(z=Z, t=T)

    print(f"catalog forward  -mean sum onehot(t) log softmax(z) = {ce:.4f}  ({ce!r})")
    print(f"catalog claim    nll(log_softmax(z), t)             = {ce_claim:.4f}")
    print(f"torch            F.cross_entropy(z, t)              = {ce_torch.item():.4f}")
    print("claimed gradient (softmax(z) - onehot(t)) / B:")
    print(np.array2string(grad_claim, precision=6))
    print("torch autograd of F.cross_entropy:")
    print(np.array2string(grad_torch.numpy(), precision=6))
    grad_err = float(np.abs(grad_claim - grad_torch.numpy()).max())
    print(f"max |claim - autograd| = {grad_err:.2e}")

    ok = (round(ce, 4) == SEED_CE and abs(ce - ce_claim) < 1e-12
          and abs(ce - ce_torch.item()) < 1e-12 and grad_err < 1e-12)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
