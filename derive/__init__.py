"""derive: check hand-written gradients and tell proved, refuted, consistent or inconclusive."""

from .backward import check_backward
from .check import check, check_all
from .domains import (BINARY, INVERTIBLE, ONE_HOT, POSITIVE, REAL, SIMPLEX, SPD, SPD_MATRIX,
                      UNIT_INTERVAL, Binary, Domain, Invertible, Label, OneHot, Positive, Real,
                      Simplex, UnitInterval)
from .errors import DeriveError, ParseError, SpecError, UnknownIdentityError, UnsupportedError
from .spec import Claim, Definition, Identity, Reference, Variable
from .usercode import assert_autograd_function, assert_gradient, check_autograd_function, check_gradient
from .verdict import CONSISTENT, INCONCLUSIVE, PROVED, REFUTED, Report, Result

__version__ = "0.1.0"

__all__ = [
    "check", "check_all", "Identity", "Variable", "Definition", "Claim", "Reference",
    "Domain", "Real", "Positive", "UnitInterval", "Simplex", "OneHot", "Binary", "Label",
    "SPD", "Invertible", "REAL", "POSITIVE", "UNIT_INTERVAL", "SIMPLEX", "ONE_HOT", "BINARY",
    "SPD_MATRIX", "INVERTIBLE",
    "DeriveError", "SpecError", "ParseError", "UnknownIdentityError", "UnsupportedError",
    "PROVED", "REFUTED", "CONSISTENT", "INCONCLUSIVE", "Report", "Result",
    "check_gradient", "check_autograd_function", "assert_gradient", "assert_autograd_function",
    "check_backward",
]
