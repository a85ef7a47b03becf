"""Exceptions. Every message names what was wrong and what to do instead."""

from __future__ import annotations


class DeriveError(Exception):
    """Base class for every error `derive` raises on purpose."""


class SpecError(DeriveError, ValueError):
    """An identity, variable or size is malformed: never valid as written."""


class UnknownIdentityError(DeriveError, KeyError):
    """A name that is not in the catalog."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnsupportedError(DeriveError, NotImplementedError):
    """Valid input that this version cannot handle yet."""


class ParseError(SpecError):
    """A formula or spec file that is malformed, located: `where:line:col: what; what is allowed`."""

    def __init__(self, message: str, *, where: str = "", line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.where = where
        self.line = line
        self.col = col
