"""derive: check hand-written gradients and tell proved, refuted, consistent or inconclusive."""

from .check import check, check_all
from .domains import BINARY, ONE_HOT, POSITIVE, REAL, SIMPLEX, UNIT_INTERVAL, Binary, Domain, Label, OneHot, Positive, Real, Simplex, UnitInterval
from .errors import DeriveError, SpecError, UnknownIdentityError, UnsupportedError
from .spec import Claim, Definition, Identity, Reference, Variable
from .usercode import assert_autograd_function, assert_gradient, check_autograd_function, check_gradient
from .verdict import CONSISTENT, INCONCLUSIVE, PROVED, REFUTED, Report, Result

__version__ = "0.1.0"

__all__ = [
    "check", "check_all", "Identity", "Variable", "Definition", "Claim", "Reference",
    "Domain", "Real", "Positive", "UnitInterval", "Simplex", "OneHot", "Binary", "Label",
    "REAL", "POSITIVE", "UNIT_INTERVAL", "SIMPLEX", "ONE_HOT", "BINARY",
    "DeriveError", "SpecError", "UnknownIdentityError", "UnsupportedError",
    "PROVED", "REFUTED", "CONSISTENT", "INCONCLUSIVE", "Report", "Result",
    "check_gradient", "check_autograd_function", "assert_gradient", "assert_autograd_function",
]
