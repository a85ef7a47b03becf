"""For users' own test suites: assert an identity holds, with a readable failure.

`assert_identity(identity)` checks it like `derive check` and raises AssertionError with the
verdict, the reason and the counterexample when it is neither proved nor consistent. The
pytest plugin (`derive.plugin`) uses the same message for collected `*.derive.toml` files.
"""

from __future__ import annotations

from typing import Any

from .run.check import check
from .model.spec import Identity
from .model.verdict import Result


def failure_message(result: Result) -> str:
    """What went wrong, in the order a reader needs it."""
    lines = [f"{result.name}: {result.verdict}"]
    if result.reason:
        lines.append(f"  {result.reason}")
    cx = result.counterexample
    if cx:
        lines.append(f"  counterexample ({cx.get('backend')}, sizes {cx.get('sizes')}):")
        for name, value in cx.get("inputs", {}).items():
            lines.append(f"    {name} = {value}")
        lines.append(f"  entry {tuple(cx.get('entry', ()))}: claimed {cx.get('claimed')!r}, "
                     f"true {cx.get('true')!r} (|error| {cx.get('abs_error', 0):.3g} > "
                     f"tolerance {cx.get('tolerance', 0):.3g})")
        lines.append(f"  seed={cx.get('seed')}; rerun: {cx.get('rerun')}")
    if result.symbolic.detail and result.verdict != "proved":
        lines.append(f"  symbolic: {result.symbolic.status}: {result.symbolic.detail}")
    return "\n".join(lines)


def assert_identity(identity: Identity, **options: Any) -> Result:
    """Check `identity` (options as for `derive.check`); raise AssertionError unless it is
    proved or consistent. Returns the result so a test can look further."""
    result = check(identity, **options)
    if not result.ok:
        raise AssertionError(failure_message(result))
    return result
