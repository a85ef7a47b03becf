"""The `derive` command: presentation only (all computing happens in derive.check).

Exit codes: 0 every identity proved or consistent; 1 some identity refuted; 2 bad usage or
bad input; 3 otherwise inconclusive; 4 an internal error (a bug: please report it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence, TextIO

from . import __version__, catalog
from .check import BACKEND_CHOICES, DEFAULT_SAMPLES, DEFAULT_TIMEOUT, check_all
from .errors import DeriveError
from .explain import explain
from .loader import resolve
from .latex import FORMATS, render_markdown, render_standalone, render_tex
from .spec import Identity
from .verdict import PROVED, Report, Result

EXIT_USAGE, EXIT_INTERNAL = 2, 4


class _UsageError(Exception):
    """A command line argparse rejected; main() prints it as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _integer(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], with a message that says so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int = _integer(1, 100_000, "a positive integer (at most 100000)")
_seed = _integer(0, 2**63 - 1, "an integer from 0 to 2**63 - 1")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="derive", description=(
        "Check gradient identities: proved (SymPy shows claim - derived == 0), refuted (a "
        "reproducible counterexample), consistent (no proof, random inputs agree) or "
        "inconclusive (could not decide)."),
        epilog="exit codes: 0 all proved or consistent, 1 any refuted, 2 bad usage or input, "
               "3 otherwise inconclusive, 4 internal error")
    parser.add_argument("--version", action="version", version=f"derive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    lister = sub.add_parser("list", help="list the built-in identities")
    lister.add_argument("--json", action="store_true", help="print JSON instead of a table")
    checker = sub.add_parser("check", help="check identities and print verdicts", description=(
        "Check catalog identities, or your own in a spec file or Python module. Each is "
        "derived symbolically, proved if possible, and "
        "compared on random inputs with three agreeing truths: the SymPy derivative, torch "
        "autograd and finite differences."))
    checker.add_argument("names", nargs="*", metavar="NAME",
                         help="catalog identities, spec files (FILE.toml) or Python modules (FILE.py)")
    checker.add_argument("--all", action="store_true", help="check the whole catalog")
    checker.add_argument("--backend", choices=BACKEND_CHOICES, default="all",
                         help="evaluate claims with numpy, torch or both (default: all)")
    checker.add_argument("--samples", type=_positive_int, default=DEFAULT_SAMPLES,
                         help=f"random inputs per size (default: {DEFAULT_SAMPLES})")
    checker.add_argument("--seed", type=_seed, default=0,
                         help="random seed; a refutation prints the seed that reproduces it (default: 0)")
    checker.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                         help=f"seconds allowed for symbolic work per size (default: {DEFAULT_TIMEOUT:g})")
    checker.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    checker.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    latex = sub.add_parser("latex", help="typeset derivations (LaTeX or Markdown)", description=(
        "Typeset the step-by-step derivation of catalog identities: the definitions, each "
        "chain-rule factor with its rule, the deltas, the result and how the proof closed."))
    latex.add_argument("names", nargs="*", metavar="NAME", help="catalog identities")
    latex.add_argument("--all", action="store_true", help="the whole catalog")
    latex.add_argument("--format", choices=FORMATS, default="tex",
                       help="tex: align* fragments; markdown: GitHub math with the verdict and the "
                            "numeric evidence; standalone: a complete document (default: tex)")
    latex.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    latex.add_argument("--seed", type=_seed, default=0, help="seed of the numeric check shown (default: 0)")
    return parser


def _fmt_err(result: Result, backend: str) -> str:
    for n in result.numeric:
        if n.backend == backend:
            return f"{n.max_rel_error:.1e}"
    return "-"


def render_table(report: Report, out: TextIO) -> None:
    """The terminal table, then the details a reader needs for anything not proved."""
    rows = [("identity", "verdict", "symbolic", "all n", "numpy rel err", "torch rel err", "time")]
    for r in report.results:
        all_n = {"not applicable": "-"}.get(r.symbolic_n.status, r.symbolic_n.status)
        rows.append((r.name, r.verdict, r.symbolic.status, all_n, _fmt_err(r, "numpy"),
                     _fmt_err(r, "torch"), f"{r.seconds:.2f}s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
        if i == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    for r in report.results:
        details = _details(r)
        if details:
            out.write(f"\n{r.name}: {r.verdict}\n")
            for line in details:
                out.write(f"  {line}\n")
    counts = {v: sum(r.verdict == v for r in report.results) for v in ("proved", "consistent",
                                                                         "inconclusive", "refuted")}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    count = len(report.results)
    out.write(f"\n{count} {'identity' if count == 1 else 'identities'}: {summary}; seed {report.seed}\n")
    proved = [r for r in report.results if r.verdict == "proved"]
    if proved:
        every = sum(r.symbolic_n.status == "proved" for r in proved)
        fixed = sum(r.symbolic_n.status == "not applicable" for r in proved)
        out.write(f"proofs: {every} for every size n, {fixed} with no size to vary, "
                  f"{len(proved) - every - fixed} only for the sizes tried\n")


def _details(r: Result) -> list[str]:
    lines = []
    if r.reason:
        lines.append(r.reason)
    cx = r.counterexample
    if cx:
        lines.append(f"counterexample ({cx['backend']}, sizes {cx['sizes']}): {cx['inputs']}")
        lines.append(f"claimed {cx['claimed']!r}, true {cx['true']!r} "
                     f"(|error| {cx['abs_error']:.3g}, tolerance {cx['tolerance']:.3g})")
        lines.append(f"seed={cx['seed']}; rerun: {cx['rerun']}")
    for s in r.sizes:
        for note in s.notes:
            lines.append(f"sizes {s.sizes}: {note}" if s.sizes else note)
    if r.verdict != PROVED and r.symbolic.detail and r.symbolic.detail not in r.reason:
        lines.append(f"symbolic: {r.symbolic.status}: {r.symbolic.detail}")
    return lines


class _Progress:
    """A one-line live display on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()

    def __call__(self, done: int, total: int, name: str, result: Result | None) -> None:
        if not self.enabled:
            return
        line = (f"[{done}/{total}] checking {name} ..." if result is None
                else f"[{done}/{total}] {name}: {result.verdict}")
        self.stream.write("\r\033[K" + line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _list(args: argparse.Namespace, out: TextIO) -> int:
    items = list(catalog.CATALOG.values())
    if args.json:
        out.write(json.dumps([{"name": i.name, "family": i.family, "description": i.description,
                               "sizes": [dict(s) for s in i.sizes], "source": i.source}
                              for i in items], indent=2) + "\n")
        return 0
    width = max(len(i.name) for i in items)
    for i in items:
        out.write(f"{i.name.ljust(width)}  {i.family:13s} {i.description}\n")
    return 0


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    identities = _selected(args)
    progress = _Progress(err, not args.no_progress and not args.json)
    try:
        report = check_all(identities, progress=progress, seed=args.seed, backend=args.backend,
                           samples=args.samples, timeout=args.timeout)
    finally:
        progress.close()
    if args.json:
        out.write(report.to_json() + "\n")
    else:
        render_table(report, out)
    return report.exit_code


def _selected(args: argparse.Namespace) -> list[Identity]:
    if args.all and args.names:
        raise DeriveError("give identity names or --all, not both")
    if not args.all and not args.names:
        raise DeriveError("nothing to do: give identity names (see 'derive list') or --all")
    if args.all:
        return list(catalog.CATALOG.values())
    return [i for argument in dict.fromkeys(args.names) for i in resolve(argument)]


def _latex(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    identities = _selected(args)
    explanations = [explain(i) for i in identities]
    results = {}
    if args.format != "tex":
        report = check_all(identities, seed=args.seed, progress=_Progress(err, True))
        results = {r.name: r for r in report.results}
    if args.format == "tex":
        text = "\n".join(render_tex(e) for e in explanations)
    elif args.format == "markdown":
        text = "\n".join(render_markdown(e, results.get(e.name)) for e in explanations)
    else:
        title = "derive: the catalog" if args.all else f"derive: {', '.join(args.names)}"
        text = render_standalone(explanations, results, title=title)
    if args.output:
        _write_atomically(Path(args.output), text)
        err.write(f"wrote {args.output}\n")
    else:
        out.write(text)
    return 0


def _write_atomically(path: Path, text: str) -> None:
    try:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise DeriveError(f"cannot write {path}: {exc.strerror}; choose a writable path with -o") from exc


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Entry point of the `derive` console script; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    try:
        if args.command == "list":
            return _list(args, out)
        if args.command == "check":
            return _check(args, out, err)
        if args.command == "latex":
            return _latex(args, out, err)
        parser.print_help(out)
        return EXIT_USAGE
    except DeriveError as exc:
        err.write(f"derive: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write("derive: interrupted\n")
        return 130
    except Exception as exc:  # a bug: one line, and the traceback on request
        if os.environ.get("DERIVE_DEBUG"):
            raise
        err.write(f"derive: internal error: {type(exc).__name__}: {exc} "
                  "(rerun with DERIVE_DEBUG=1 for the traceback, and please report it)\n")
        return EXIT_INTERNAL
