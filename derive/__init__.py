"""derive: check hand-written gradients and tell proved, refuted, consistent or inconclusive."""

from .errors import DeriveError, ParseError, SpecError, UnknownIdentityError, UnsupportedError
from .model import ops as ops  # derive.ops: the vocabulary of formulas
from .model.domains import (BINARY, INVERTIBLE, ONE_HOT, POSITIVE, REAL, SIMPLEX, SPD, SPD_MATRIX,
                            SYMMETRIC, UNIT_INTERVAL, Binary, Domain, Invertible, Label, OneHot, Positive,
                            Real, Simplex, Symmetric, UnitInterval)
from .model.spec import Claim, Definition, Identity, Reference, Variable
from .model.verdict import CONSISTENT, INCONCLUSIVE, PROVED, REFUTED, Report, Result
from .numeric import callables as callables  # derive.callables.make_forward / make_claim
from .present import notebook as _notebook  # noqa: F401  (attaches Jupyter's displays to the result data)
from .run.check import check, check_all
from .usercode.backward import assert_backward, check_backward
from .usercode.function import assert_autograd_function, check_autograd_function
from .usercode.gradient import assert_gradient, check_gradient
from .version import __version__ as __version__

__all__ = [
    "check", "check_all", "Identity", "Variable", "Definition", "Claim", "Reference",
    "Domain", "Real", "Positive", "UnitInterval", "Simplex", "OneHot", "Binary", "Label",
    "SPD", "Symmetric", "Invertible", "REAL", "POSITIVE", "UNIT_INTERVAL", "SIMPLEX", "ONE_HOT", "BINARY",
    "SPD_MATRIX", "SYMMETRIC", "INVERTIBLE",
    "DeriveError", "SpecError", "ParseError", "UnknownIdentityError", "UnsupportedError",
    "PROVED", "REFUTED", "CONSISTENT", "INCONCLUSIVE", "Report", "Result",
    "check_gradient", "check_autograd_function", "assert_gradient", "assert_autograd_function",
    "check_backward", "assert_backward",
]
