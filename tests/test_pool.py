"""Worker processes: results in order, crashes and hangs isolated, timeouts named by stage."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest
import sympy as sp

from derive import catalog
from derive.run.check import check, check_all
from derive.errors import SpecError
from derive.run.pool import run_tasks
from derive.model.spec import Claim, Definition, Identity, Variable


def test_tasks_run_in_parallel_workers_and_every_index_comes_back() -> None:
    parent = os.getpid()
    outcomes = list(run_tasks(5, lambda i: (i * i, os.getpid()), jobs=2, limit=lambda i: 30.0))
    assert sorted(o.index for o in outcomes) == [0, 1, 2, 3, 4]
    assert all(o.kind == "ok" and o.value[0] == o.index ** 2 for o in outcomes)
    pids = {o.value[1] for o in outcomes}
    assert parent not in pids and 1 <= len(pids) <= 2


def _bad(i: int) -> int:
    if i == 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    if i == 2:
        time.sleep(60)
    if i == 3:
        raise ValueError("broken")
    return i


def test_a_crash_a_hang_and_an_exception_stop_only_their_own_task() -> None:
    start = time.perf_counter()
    outcomes = {o.index: o for o in run_tasks(5, _bad, jobs=2, limit=lambda i: 2.0)}
    assert time.perf_counter() - start < 10
    assert outcomes[0].kind == outcomes[4].kind == "ok"
    assert outcomes[1].kind == "crash" and outcomes[1].value == -signal.SIGSEGV
    assert outcomes[2].kind == "timeout"
    assert outcomes[3].kind == "error" and isinstance(outcomes[3].value, ValueError)


def _identity(name: str, claim: Claim) -> Identity:
    return Identity(name, (Variable("x"),), (Definition("f", lambda v: sp.sin(v.x) ** 2),), (claim,))


def _segfault(v):  # noqa: ANN001, ANN202 - a formula that kills the process it runs in
    os.kill(os.getpid(), signal.SIGSEGV)


def test_check_all_isolates_a_crashing_identity_and_keeps_the_order() -> None:
    good = _identity("good", Claim(lambda v: 2 * sp.sin(v.x) * sp.cos(v.x), wrt="x"))
    crashing = _identity("crashing", Claim(_segfault, wrt="x"))
    wrong = _identity("wrong", Claim(lambda v: sp.sin(v.x) * sp.cos(v.x), wrt="x"))
    report = check_all([good, crashing, wrong], jobs=2, samples=8)
    assert [r.name for r in report.results] == ["good", "crashing", "wrong"]
    assert [r.verdict for r in report.results] == ["proved", "inconclusive", "refuted"]
    assert "crashed" in report.results[1].reason and "went on" in report.results[1].reason
    assert report.results[1].fingerprint == ""  # not judged: --resume checks it again
    assert report.complete


def test_jobs_give_the_same_results_as_one_process() -> None:
    names = ["sigmoid_derivative", "softmax_jacobian", "mse_gradient"]
    identities = [catalog.get(n) for n in names]
    one = check_all(identities, jobs=0, samples=8)
    two = check_all(identities, jobs=2, samples=8)

    def strip(report):  # noqa: ANN001, ANN202 - timings aside
        return [dataclasses.replace(r, seconds=0, symbolic=dataclasses.replace(r.symbolic, seconds=0),
                                    symbolic_n=dataclasses.replace(r.symbolic_n, seconds=0), sizes=tuple(
                                        dataclasses.replace(s, seconds=0, symbolic=dataclasses.replace(
                                            s.symbolic, seconds=0)) for s in r.sizes))
                for r in report.results]

    assert strip(one) == strip(two)


def test_a_malformed_identity_in_a_worker_is_still_a_spec_error() -> None:
    broken = _identity("broken", Claim(lambda v: [v.x, v.x], wrt="x"))
    with pytest.raises(SpecError, match="shape"):
        check_all([broken, catalog.get("tanh_derivative")], jobs=2, samples=4)


def test_negative_jobs_are_refused() -> None:
    with pytest.raises(SpecError, match="jobs"):
        check_all([catalog.get("tanh_derivative")], jobs=-1)


def test_a_timeout_names_the_stage_it_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(e):  # noqa: ANN001, ANN202 - stands in for a simplify that never returns
        time.sleep(30)

    monkeypatch.setattr(sp, "simplify", slow)
    # sqrt((x^2 + 1)^2) = x^2 + 1 escapes the rational rungs, so the ladder reaches simplify
    identity = Identity("square_root", (Variable("x"),), (Definition("f", lambda v: v.x**3 / 3 + v.x),),
                        (Claim(lambda v: sp.sqrt(v.x**4 + 2 * v.x**2 + 1), wrt="x"),))
    start = time.perf_counter()
    result = check(identity, samples=8, timeout=1.0)
    assert time.perf_counter() - start < 6
    assert result.symbolic.status == "timeout"
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("timeout in simplify")


def _numeric_hangs(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    time.sleep(60)


def test_a_hang_outside_the_symbolic_worker_is_stopped_and_its_stage_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    check_module = importlib.import_module("derive.run.check")
    monkeypatch.setattr(check_module, "run_numeric", _numeric_hangs)
    monkeypatch.setattr(check_module, "wall_limit", lambda identity, timeout: 3.0)
    start = time.perf_counter()
    report = check_all([catalog.get("tanh_derivative")], jobs=1, samples=4)
    assert time.perf_counter() - start < 10
    (result,) = report.results
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("timeout in the numeric check: the identity did not finish within 3 s")


def _compile_hangs(graph, derivation):  # noqa: ANN001, ANN202 - stands in for a SymPy pathology in cse
    time.sleep(60)


def test_compiling_the_formulas_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    check_module = importlib.import_module("derive.run.check")
    monkeypatch.setattr(check_module, "compile_graph", _compile_hangs)
    monkeypatch.setattr(check_module, "COMPILE_SECONDS", 1.0)
    start = time.perf_counter()
    result = check(catalog.get("tanh_derivative"), samples=4, timeout=1.0)
    assert time.perf_counter() - start < 8
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("timeout in compiling the formulas: not finished within 1 s")


LEFT_SUSPENDED = """
import time
from derive.run.pool import run_tasks

def work(i):
    time.sleep(0.1 if i == 0 else 120)
    return i

tasks = run_tasks(2, work, jobs=2, limit=lambda i: 300)
print(next(tasks).index, flush=True)
# the generator is left suspended at its yield (an exception in the caller would do the same)
"""


def test_a_pool_left_suspended_does_not_hold_the_process_at_exit() -> None:
    # multiprocessing's exit handler waits for non-daemon workers: ours must kill them first
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LEFT_SUSPENDED], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr
    assert time.perf_counter() - start < 20
