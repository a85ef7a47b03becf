"""Every examples/*.py runs to exit code 0 and prints the seeds' key numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

KEY_NUMBERS: dict[str, list[str]] = {
    "cross_entropy.py": ["0.9300"],
    "mse.py": ["= 9.0"],
    "himmelblau_adam.py": ["-3.7793", "-3.2832", "(3.0000, 2.0000)"],
    "gradient_descent.py": ["0.39785866768425965", "0.5304782235790126", "0.3979", "0.5305"],
    "linear_models.py": ["predict (after training) 4 8.0000", "-16.2288", "1.997756"],
}


def test_every_example_has_key_numbers() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(KEY_NUMBERS)


@pytest.mark.parametrize("name", sorted(KEY_NUMBERS))
def test_example_runs(name: str) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True,
                            text=True, timeout=300, cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    for number in KEY_NUMBERS[name]:
        assert number in result.stdout, f"{number!r} not in the output of {name}:\n{result.stdout}"
    assert result.stdout.rstrip().endswith("OK")
