"""The `derive` command: presentation only (all computing happens in derive.check).

Exit codes: 0 every identity proved or consistent; 1 some identity refuted; 2 bad usage or
bad input; 3 otherwise inconclusive; 4 an internal error (a bug: please report it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from ..version import __version__
from .. import catalog
from ..numeric.backends import resolve_device
from ..run.check import BACKEND_CHOICES, DEFAULT_SAMPLES, DEFAULT_TIMEOUT, Interrupted, check_all
from ..errors import DeriveError
from ..symbolic.explain import explain
from ..run.loader import resolve
from .latex import FORMATS, render_markdown, render_standalone, render_tex
from ..model.spec import Identity
from .terminal import elapsed, paint, plain, use_color
from ..model.verdict import PROVED, Report, Result, report_from_json
from .stability import note as stability_note

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
    _add_check_options(checker, "worker processes checking identities in parallel, each isolated (a "
                                "crash or a hang stops only its identity); 0 checks in this process "
                                "(default: the CPU count)")
    checker.add_argument("--device", default="cpu", metavar="DEVICE",
                         help="torch device for the torch backend and autograd: cpu or cuda[:N] (default: cpu)")
    checker.add_argument("-o", "--output", metavar="FILE",
                         help="write the JSON results to FILE as each identity finishes (replaced "
                              "atomically: valid JSON at every moment, also after Ctrl-C)")
    checker.add_argument("--resume", metavar="FILE",
                         help="reuse the results in FILE (from -o) of identities whose formulas, "
                              "seed and options are unchanged; check only the rest")
    checker.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
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
    _add_report_parsers(sub)
    _add_stability_parser(sub)
    return parser


def _add_stability_parser(sub: Any) -> None:
    """`derive stability`: bits lost per formula and dtype, where, why, and a proved rewrite."""
    stab = sub.add_parser("stability", help="how many bits each formula loses in float32, bfloat16, float16",
                          description=(
        "Evaluate every definition and claim (and the gradient autograd takes of the forward) as "
        "written, in each dtype, on in-domain samples and along a sweep of input magnitudes, "
        "against the 40-digit value: bits lost (mean, worst), where more than half are lost, the "
        "subexpression responsible (overflow, underflow, cancellation) and a rewrite that derive "
        "proves equal. Exit code 1 when some formula loses more than half its bits."))
    stab.add_argument("names", nargs="*", metavar="NAME",
                      help="catalog identities, spec files (FILE.toml) or Python modules (FILE.py)")
    stab.add_argument("--all", action="store_true", help="the whole catalog")
    stab.add_argument("--dtype", default="float32,bfloat16,float16", metavar="DTYPES",
                      help="comma-separated: float32, bfloat16, float16, float64 (default: float32,bfloat16,float16)")
    stab.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    stab.add_argument("--jobs", "-j", type=_integer(0, 1024, "a number of workers from 0 to 1024"),
                      default=None, metavar="N", help="worker processes (default: the CPU count; 0: in this process)")
    stab.add_argument("--json", action="store_true", help="print JSON instead of text")
    stab.add_argument("--no-color", action="store_true", help="no colour")


def _add_check_options(p: argparse.ArgumentParser, jobs_help: str) -> None:
    """What to check and how: shared by `check` and `report`."""
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="catalog identities, spec files (FILE.toml) or Python modules (FILE.py)")
    p.add_argument("--all", action="store_true", help="the whole catalog")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="all",
                   help="evaluate claims with numpy, torch or both (default: all)")
    p.add_argument("--samples", type=_positive_int, default=DEFAULT_SAMPLES,
                   help=f"random inputs per size (default: {DEFAULT_SAMPLES})")
    p.add_argument("--seed", type=_seed, default=0,
                   help="random seed; a refutation prints the seed that reproduces it (default: 0)")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                   help=f"seconds allowed for each symbolic stage per size (default: {DEFAULT_TIMEOUT:g})")
    p.add_argument("--jobs", "-j", type=_integer(0, 1024, "a number of workers from 0 to 1024"),
                   default=None, metavar="N", help=jobs_help)
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    p.add_argument("--no-color", action="store_true",
                   help="no colour in the table (also off when not on a terminal or NO_COLOR is set)")
    p.add_argument("--stability", default="float32", metavar="DTYPES",
                   help="dtypes in which each formula's bits lost are measured (a line under the verdict, "
                        "\"stability\" in JSON), e.g. float32,bfloat16,float16; none: not measured "
                        "(default: float32)")


def _add_report_parsers(sub: Any) -> None:
    """`derive report` (one self-contained HTML page) and `derive plot` (one figure)."""
    report = sub.add_parser("report", help="check identities and write an HTML report", description=(
        "Check identities and write one self-contained HTML page (no network needed to view it): "
        "a summary table, then per identity its claim, its derivation as MathML, the numbers, "
        "the counterexample if refuted, and plots. Needs: pip install 'derive-checker[report]'."))
    _add_check_options(report, "worker processes for the checks and for the page's derivations and "
                               "plots; 0 works in this process (default: the CPU count)")
    report.add_argument("-o", "--output", metavar="FILE.html", required=True, help="the page to write")
    report.add_argument("--title", default=None, help="the page title (default: derive report: NAMES)")
    report.add_argument("--no-plots", action="store_true", help="leave the plots out (faster, smaller)")
    plot = sub.add_parser("plot", help="draw one plot of an identity's evidence", description=(
        "fd: finite-difference error against step size (central vs complex step, the chosen step "
        "marked); errors: the distribution of the claims' relative errors over the samples; "
        "himmelblau: contours with the four minima and Adam's paths from the seeds' starting points; "
        "stability: bits lost against input magnitude per dtype, for each formula and its proved rewrite. "
        "Needs: pip install 'derive-checker[report]'."))
    plot.add_argument("name", metavar="NAME",
                      help="a catalog identity, or a spec file or module (with several identities: "
                           "choose one with --identity)")
    plot.add_argument("--identity", metavar="NAME", help="which identity of the file NAME to plot")
    plot.add_argument("-o", "--output", metavar="FILE", required=True, help="FILE.png or FILE.svg")
    plot.add_argument("--kind", choices=("fd", "errors", "himmelblau", "stability"), default="fd",
                      help="which plot (default: fd)")
    plot.add_argument("--samples", type=_positive_int, default=DEFAULT_SAMPLES,
                      help=f"random inputs per size for --kind errors (default: {DEFAULT_SAMPLES})")
    plot.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    plot.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                      help=f"seconds allowed for the symbolic derivative (default: {DEFAULT_TIMEOUT:g})")


def _fmt_err(result: Result, backend: str) -> str:
    for n in result.numeric:
        if n.backend == backend:
            return f"{n.max_rel_error:.1e}"
    return "-"


def render_table(report: Report, out: TextIO, *, color: bool | None = None) -> None:
    """The terminal table, then the details a reader needs for anything not proved; verdicts
    in colour when `color` (by default: when `out` is a terminal and NO_COLOR is unset)."""
    color = use_color(out) if color is None else color
    rows = [("identity", "verdict", "symbolic", "all n", "numpy rel err", "torch rel err", "time")]
    for r in report.results:
        all_n = {"not applicable": "-"}.get(r.symbolic_n.status, r.symbolic_n.status)
        rows.append((r.name, r.verdict, r.symbolic.status, all_n, _fmt_err(r, "numpy"),
                     _fmt_err(r, "torch"), f"{r.seconds:.2f}s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths)]
        if i:
            cells[1] = paint(cells[1], row[1], color)
        out.write("  ".join(cells).rstrip() + "\n")
        if i == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    for r in report.results:
        details = _details(r)
        if details:
            out.write(f"\n{r.name}: {paint(r.verdict, r.verdict, color)}\n")
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
    line = stability_note(r)
    if line:
        lines.append(line)
    return lines


class _Progress:
    """A one-line live display on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, name: str, result: Result | None) -> None:
        if not self.enabled:
            return
        clock = elapsed(time.perf_counter() - self.start)
        line = (f"[{done}/{total} {clock}] checking {name} ..." if result is None
                else f"[{done}/{total} {clock}] {name}: {result.verdict}")
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
        out.write(f"{i.name.ljust(width)}  {i.family:13s} {plain(i.description)}\n")
    return 0


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    identities = _selected(args)
    device = resolve_device(args.device)
    previous = _previous(Path(args.resume)) if args.resume else None
    output = Path(args.output) if args.output else None
    if output is not None:
        _write_atomically(output, Report(args.seed, (), complete=False).to_json() + "\n")
    progress = _Progress(err, not args.no_progress and not args.json)

    def save(partial: Report) -> None:
        if output is not None:
            _write_atomically(output, partial.to_json() + "\n")

    try:
        report = check_all(identities, progress=progress, seed=args.seed, jobs=args.jobs,
                           on_result=save, previous=previous, backend=args.backend,
                           samples=args.samples, timeout=args.timeout, device=device,
                           stability=_dtypes(args.stability))
    except Interrupted as stop:
        progress.close()
        if stop.report.results:
            render_table(stop.report, out)
        err.write(f"derive: interrupted: {len(stop.report.results)} of {len(identities)} identities "
                  f"finished{f'; their results are in {output}' if output else ''}\n")
        return 130
    finally:
        progress.close()
    if output is not None:
        err.write(f"wrote {output}\n")
    if args.json:
        out.write(report.to_json() + "\n")
    else:
        render_table(report, out, color=use_color(out, disabled=args.no_color))
    return report.exit_code


def _previous(path: Path) -> Report:
    """The results file a run with -o wrote, for --resume."""
    try:
        return report_from_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeriveError(f"cannot read {path}: {exc.strerror}; give the file a run wrote with -o") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DeriveError(f"{path} is not a derive results file ({type(exc).__name__}); "
                          "give the file a run wrote with -o") from exc


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


def _report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .report import render_html, require

    require(plots=not args.no_plots)  # a missing extra is reported before any checking
    identities = _selected(args)
    progress = _Progress(err, not args.no_progress)
    try:
        report = check_all(identities, progress=progress, seed=args.seed, backend=args.backend,
                           samples=args.samples, timeout=args.timeout, jobs=args.jobs,
                           stability=_dtypes(args.stability))
    finally:
        progress.close()
    title = args.title or ("derive report: the catalog" if args.all else f"derive report: {', '.join(args.names)}")
    page = render_html(identities, report, title=title, samples=args.samples, timeout=args.timeout,
                       plots=not args.no_plots, jobs=args.jobs)
    _write_atomically(Path(args.output), page)
    render_table(report, out, color=use_color(out, disabled=args.no_color))
    err.write(f"wrote {args.output} ({len(page.encode()) / 1e6:.2f} MB)\n")
    return report.exit_code


def _plot(args: argparse.Namespace, err: TextIO) -> int:
    from . import plot

    found = resolve(args.name)
    if args.identity is not None:
        found = [i for i in found if i.name == args.identity]
        if not found:
            raise DeriveError(f"{args.name} defines no identity {args.identity!r}")
    elif len(found) > 1:
        raise DeriveError(f"{args.name} defines {len(found)} identities; choose one with --identity "
                          f"({', '.join(i.name for i in found[:5])}{', ...' if len(found) > 5 else ''})")
    plot.write(args.kind, found[0], args.output, seed=args.seed, samples=args.samples, timeout=args.timeout)
    err.write(f"wrote {args.output}\n")
    return 0


def _dtypes(text: str) -> str | None:
    """--stability: the dtypes, or None for "none"."""
    return None if text.strip().lower() in ("none", "") else text


def _stability(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`derive stability`: each identity analysed in a worker of its own (parallel, isolated)."""
    from ..numeric.stability import analyse, parse_dtypes
    from ..run.pool import run_tasks
    from .stability import render

    dtypes = parse_dtypes(args.dtype)
    if not dtypes:
        raise DeriveError("--dtype: give at least one of float32, bfloat16, float16, float64")
    identities = _selected(args)
    work = lambda k: analyse(identities[k], dtypes=dtypes, seed=args.seed).summary()  # noqa: E731
    summaries: list[Any] = [None] * len(identities)
    jobs = os.cpu_count() or 1 if args.jobs is None else args.jobs
    if jobs == 0 or len(identities) == 1:
        summaries = [work(k) for k in range(len(identities))]
    else:
        for outcome in run_tasks(len(identities), work, jobs=jobs, limit=lambda k: 300.0):
            if outcome.kind == "ok":
                summaries[outcome.index] = outcome.value
            elif outcome.kind == "error" and isinstance(outcome.value, DeriveError):
                raise outcome.value
            else:
                summaries[outcome.index] = {"name": identities[outcome.index].name, "sizes": {}, "dtypes": list(dtypes),
                                            "sweep": "", "notes": [f"not analysed: {outcome.kind} ({outcome.value})"],
                                            "stability": [], "formulas": []}
    if args.json:
        out.write(json.dumps({"seed": args.seed, "dtypes": list(dtypes), "results": summaries}, indent=2,
                             default=str) + "\n")
    else:
        render(summaries, out, color=use_color(out, disabled=args.no_color))
    return 1 if any(s["stability"] for s in summaries) else 0


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
        if args.command == "report":
            return _report(args, out, err)
        if args.command == "plot":
            return _plot(args, err)
        if args.command == "stability":
            return _stability(args, out, err)
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
