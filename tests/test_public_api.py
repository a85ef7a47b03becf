"""The public surface: every name `from derive import ...` offered before the packages were laid
out by stage still imports, and so do the module paths the README and examples use."""

from __future__ import annotations

import importlib

import pytest

import derive

BEFORE = [  # derive.__all__ as it was when derive/ was one flat folder
    "check", "check_all", "Identity", "Variable", "Definition", "Claim", "Reference",
    "Domain", "Real", "Positive", "UnitInterval", "Simplex", "OneHot", "Binary", "Label",
    "SPD", "Invertible", "REAL", "POSITIVE", "UNIT_INTERVAL", "SIMPLEX", "ONE_HOT", "BINARY",
    "SPD_MATRIX", "INVERTIBLE",
    "DeriveError", "SpecError", "ParseError", "UnknownIdentityError", "UnsupportedError",
    "PROVED", "REFUTED", "CONSISTENT", "INCONCLUSIVE", "Report", "Result",
    "check_gradient", "check_autograd_function", "assert_gradient", "assert_autograd_function",
    "check_backward",
]
ADDED = ["assert_backward", "Symmetric", "SYMMETRIC"]


def test_every_public_name_of_before_is_still_exported() -> None:
    assert set(BEFORE) <= set(derive.__all__)
    assert set(derive.__all__) == set(BEFORE) | set(ADDED)  # a new public name is added here on purpose
    for name in derive.__all__:
        assert getattr(derive, name) is not None


@pytest.mark.parametrize("path, names", [
    ("derive", ["ops", "catalog", "callables", "__version__", "testing", "strategies"]),
    ("derive.numeric.callables", ["make_forward", "make_claim"]),
    ("derive.testing", ["assert_identity"]),
    ("derive.strategies", ["inputs"]),
])
def test_the_paths_the_readme_uses_import(path: str, names: list[str]) -> None:
    module = importlib.import_module(path)
    for name in names:
        if not hasattr(module, name):
            importlib.import_module(f"{path}.{name}")  # a submodule, imported on first use
        assert hasattr(module, name), f"{path}.{name}"


def test_the_command_and_the_plugin_entry_points_resolve() -> None:
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    plugins = {e.name: e.value for e in entry_points(group="pytest11")}
    assert scripts["derive"] == "derive.present.cli:main" and plugins["derive"] == "derive.plugin"
    assert callable(tuple(entry_points(group="console_scripts", name="derive"))[0].load())
