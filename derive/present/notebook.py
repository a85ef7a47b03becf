"""Jupyter displays for the plain result data: a Result shows as Markdown, an Explanation as
LaTeX. The data classes know nothing of presentation; importing derive attaches these."""

from __future__ import annotations

from ..model.verdict import Result
from ..symbolic.explain import Explanation
from .latex import explanation_latex, result_markdown


def _result_markdown(self: Result) -> str:
    return result_markdown(self)


def _explanation_latex(self: Explanation) -> str:
    return explanation_latex(self)


Result._repr_markdown_ = _result_markdown  # type: ignore[attr-defined]
Explanation._repr_latex_ = _explanation_latex  # type: ignore[attr-defined]
