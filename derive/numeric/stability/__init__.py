"""Numerical stability: how many bits each formula loses in float32, bfloat16 and float16, where,
why, and a rewrite proved equal that does not (see `analysis`)."""

from .analysis import EXPONENTS, Analysis, FormulaResult, Outcome, Rewrite, analyse
from .measure import DEFAULT_DTYPES, DTYPES, DtypeInfo, bits_lost, parse_dtypes

__all__ = ["analyse", "Analysis", "FormulaResult", "Outcome", "Rewrite", "EXPONENTS", "DEFAULT_DTYPES",
           "DTYPES", "DtypeInfo", "bits_lost", "parse_dtypes"]
