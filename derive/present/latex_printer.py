"""The house LaTeX notation: SymPy's printer with textbook names, and text-mode escaping.

O_k for a node's entry at its index, delta_k for the adjoint of a pre-activation, sigma for the
sigmoid, delta_ij for Kronecker; summation indices renamed to the letters the graph uses.
Used by `derive.present.latex` (which re-exports `DerivePrinter`, `tex`, `escape`).
"""

from __future__ import annotations

from typing import Any, Iterable

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ..model.indexed import bound_key

_SUM_LETTERS = "klmpqrsuvabcdefgh"
_GREEK = {"delta": r"\delta", "sigma": r"\sigma", "alpha": r"\alpha", "beta": r"\beta",
          "gamma": r"\gamma", "lambda": r"\lambda", "mu": r"\mu", "theta": r"\theta", "eta": r"\eta"}


def _head(name: str) -> tuple[str, str]:
    """'W_jk' -> ('W', 'jk'); 'y_hat' -> (r'\\hat{y}', ''); 'delta^{(x)}' -> (r'\\delta^{(x)}', '')."""
    sup = ""
    if "^" in name:
        name, sup = name.split("^", 1)
        sup = "^" + sup
    base, _, suffix = name.partition("_")
    head = _GREEK.get(base, base if len(base) == 1 else rf"\mathrm{{{base}}}")
    if suffix == "hat":
        return rf"\hat{{{head}}}{sup}", ""
    return head + sup, suffix


def _subscript(parts: list[str]) -> str:
    joined = "".join(parts) if all(len(p) == 1 for p in parts) else ",".join(parts)
    return f"_{{{joined}}}" if joined else ""


class DerivePrinter(LatexPrinter):
    """SymPy's LaTeX printer with textbook names: O_{k}, W_{jk}, \\delta_{k}, \\sum_{k}."""

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        head, _ = _head(str(expr.base.label))
        return head + _subscript([self._print(i) for i in expr.indices])

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        head, suffix = _head(expr.name)
        if "_" in suffix:  # grad_z_dot_v: z, dot, v (a subscript cannot hold a bare _)
            return head + _subscript([p if len(p) == 1 else rf"\mathrm{{{p}}}" for p in suffix.split("_") if p])
        return head + _subscript([suffix]) if suffix else head

    _print_Dummy = _print_Symbol

    def _print_Sum(self, expr: sp.Sum) -> str:
        body = self._print(expr.function)
        if isinstance(expr.function, sp.Add):
            body = rf"\left({body}\right)"
        return "".join(rf"\sum_{{{self._print(v)}}} " for v, _, _ in reversed(expr.limits)) + body

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta, exp: Any = None) -> str:
        out = r"\delta" + _subscript([self._print(a) for a in expr.args])
        return f"{out}^{{{exp}}}" if exp else out

    def _bracket(self, expr: Any, left: str, right: str, exp: Any = None) -> str:
        out = rf"\left{left}{self._print(expr.args[0])}\right{right}"
        return f"{out}^{{{exp}}}" if exp else out

    def _print_Floor(self, expr: Any, exp: Any = None) -> str:  # derive.ops.floor
        return self._bracket(expr, r"\lfloor ", r"\rfloor", exp)

    def _print_Ceil(self, expr: Any, exp: Any = None) -> str:
        return self._bracket(expr, r"\lceil ", r"\rceil", exp)

    def _print_Round(self, expr: Any, exp: Any = None) -> str:  # nearest integer
        return self._bracket(expr, r"\lfloor ", r"\rceil", exp)

    def _print_Trunc(self, expr: Any, exp: Any = None) -> str:
        return rf"\operatorname{{trunc}}{self._bracket(expr, '(', ')', exp)}"

    def _print_Sign(self, expr: Any, exp: Any = None) -> str:
        return rf"\operatorname{{sgn}}{self._bracket(expr, '(', ')', exp)}"

    def _print_loggamma(self, expr: Any, exp: Any = None) -> str:  # lgamma
        out = rf"\ln\Gamma\left({self._print(expr.args[0])}\right)"
        return rf"\left({out}\right)^{{{exp}}}" if exp else out

    def _print_polygamma(self, expr: Any, exp: Any = None) -> str:  # digamma, polygamma
        n, x = expr.args
        head = r"\psi" if n == 0 else rf"\psi^{{({self._print(n)})}}"
        out = rf"{head}\left({self._print(x)}\right)"
        return rf"\left({out}\right)^{{{exp}}}" if exp else out

    def _print_atan2(self, expr: Any, exp: Any = None) -> str:
        out = rf"\operatorname{{atan2}}\left({self._print(expr.args[0])}, {self._print(expr.args[1])}\right)"
        return f"{out}^{{{exp}}}" if exp else out

    def _print_Function(self, expr: Any, exp: Any = None) -> str:
        if expr.func.__name__ == "sigma":
            out = rf"\sigma\left({self._print(expr.args[0])}\right)"
            return f"{out}^{{{exp}}}" if exp else out
        return super()._print_Function(expr, exp)


_sigma = sp.Function("sigma")


def _readable(e: Any, taken: set[str], letters_for: dict[Any, str] | None = None) -> Any:
    """Sigmoids written as sigma(x); summation indices renamed: to the letter the graph uses
    for that range (sum over J -> j) when it is free, else to an unused letter."""
    e = sp.sympify(e)
    e = e.replace(lambda x: isinstance(x, sp.Pow) and x.exp == -1 and isinstance(x.base, sp.Add)
                  and len(x.base.args) == 2 and 1 in x.base.args
                  and any(isinstance(a, sp.exp) for a in x.base.args),
                  lambda x: _sigma(-next(a for a in x.base.args if isinstance(a, sp.exp)).args[0]))
    used = taken | {str(s) for s in e.free_symbols}
    letters = iter(c for c in _SUM_LETTERS if c not in used and c not in (letters_for or {}).values())
    names: dict[sp.Symbol, sp.Symbol] = {}
    # a total order that is the same in every process (a set's order follows string hashes)
    for s in sorted(e.atoms(sp.Sum), key=lambda x: (sp.count_ops(x), bound_key(x))):
        inside = {str(x) for x in s.function.free_symbols}
        for var, _, hi in s.limits:
            if var in names:
                continue
            want = (letters_for or {}).get(hi + 1)
            if want is None or want in used or want in inside or want in {str(v) for v in names.values()}:
                want = next(letters, f"s{len(names)}")
            names[var] = sp.Symbol(want, integer=True)
    return e.xreplace(names) if names else e


def tex(e: Any, taken: Iterable[str] = (), letters_for: dict[Any, str] | None = None) -> str:
    """LaTeX of one expression in the house notation."""
    return DerivePrinter({"mul_symbol": None}).doprint(_readable(e, set(taken), letters_for))


def _partial(top: str, bottom: str) -> str:
    return rf"\frac{{\partial {top}}}{{\partial {bottom}}}"


_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "^": r"\^{}", "~": r"\~{}",
            "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "<": r"\textless{}",
            ">": r"\textgreater{}"}


def escape(s: str) -> str:
    """Plain text made safe for LaTeX's text mode."""
    return "".join(_SPECIAL.get(c, c) for c in s)


def _text(s: str) -> str:
    return r"\text{" + escape(s) + "}"
