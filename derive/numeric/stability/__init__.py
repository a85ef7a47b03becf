"""Numerical stability: how many bits each formula loses in float32, bfloat16 and float16, where,
why, and a rewrite proved equal that does not (see `analysis`)."""

from .analysis import analyse
from .measure import DEFAULT_DTYPES, DTYPES, DtypeInfo, bits_lost, parse_dtypes
from .result import Analysis, FormulaResult, Outcome, Rewrite
from .sweep import EXPONENTS

__all__ = ["analyse", "Analysis", "FormulaResult", "Outcome", "Rewrite", "EXPONENTS", "DEFAULT_DTYPES",
           "DTYPES", "DtypeInfo", "bits_lost", "parse_dtypes"]
