"""No lost results: -o written as identities finish, --resume, Ctrl-C and kill -9 mid-run,
and a spec whose one identity hangs SymPy's simplify next to nine good ones."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sympy as sp

from derive.present.cli import main

DERIVE = [str(Path(sys.executable).with_name("derive"))]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _good(count: int, start: int = 0) -> str:
    return "".join(f'''
[[identity]]
name = "sigmoid_{i}"
variables = {{ x = "real" }}
define = {{ s = "sigmoid(x)" }}
wrt = "x"
claim = "s * (1 - s)"
''' for i in range(start, start + count))


def _hangs_simplify() -> str:
    """A true claim that only simplify could prove, and on which simplify runs for minutes:
    sixth roots of expanded sixth powers, each times cos^2 plus the same times sin^2."""
    x = sp.Symbol("x")
    defs = [f't{k} = "({sp.expand((x**2 + k)**6)})**(1/6) * cos({k}*x)**2 + sin({k}*x)**2 * (x**2 + {k})'
            f' - (x**2 + {k})"' for k in range(1, 16)]
    return f'''
[[identity]]
name = "hangs_simplify"
variables = {{ x = "real" }}
define = {{ {", ".join(defs)}, f = "x**3 / 3" }}
wrt = "x"
claim = "x**2 + {" + ".join(f"t{k}" for k in range(1, 16))}"
'''


def test_one_identity_hanging_simplify_is_inconclusive_and_the_nine_others_are_judged(tmp_path: Path) -> None:
    spec = tmp_path / "hang.derive.toml"
    spec.write_text(_hangs_simplify() + _good(9))
    out = tmp_path / "results.json"
    start = time.perf_counter()
    code, text, err = run("check", str(spec), "--timeout", "3", "-j", "2", "-o", str(out), "--samples", "16")
    elapsed = time.perf_counter() - start
    assert elapsed < 3 + 5 + 4, elapsed  # the time limit plus 5 s (plus this machine's start-up)
    assert code == 3, err
    results = json.loads(out.read_text())["results"]
    assert [r["verdict"] for r in results] == ["inconclusive"] + ["proved"] * 9
    assert results[0]["reason"].startswith("timeout in simplify: not finished within 3 s")
    assert "10 identities: 9 proved, 1 inconclusive" in text


def test_results_file_is_complete_json_and_resume_skips_what_is_unchanged(tmp_path: Path) -> None:
    spec = tmp_path / "good.derive.toml"
    spec.write_text(_good(3))
    out = tmp_path / "r.json"
    code, _, err = run("check", str(spec), "-o", str(out), "--samples", "8")
    assert code == 0 and f"wrote {out}" in err
    first = json.loads(out.read_text())
    assert first["complete"] is True and len(first["results"]) == 3
    assert all(len(r["fingerprint"]) == 32 for r in first["results"])

    spec.write_text(_good(4))  # one more identity: only it is checked
    code, _, _ = run("check", str(spec), "--resume", str(out), "-o", str(out), "--samples", "8", "--json")
    second = json.loads(out.read_text())
    assert code == 0 and len(second["results"]) == 4
    # reused results are the very same objects, timings included; the new one is fresh
    assert second["results"][:3] == first["results"]

    # another seed is other inputs: nothing is reused
    code, text, _ = run("check", str(spec), "--resume", str(out), "--seed", "1", "--samples", "8", "--json")
    assert [r["seconds"] for r in json.loads(text)["results"]][:3] != [r["seconds"] for r in first["results"]]


def test_a_changed_formula_is_checked_again_on_resume(tmp_path: Path) -> None:
    spec = tmp_path / "s.derive.toml"
    spec.write_text(_good(1))
    out = tmp_path / "r.json"
    assert run("check", str(spec), "-o", str(out), "--samples", "8")[0] == 0
    spec.write_text(_good(1).replace('claim = "s * (1 - s)"', 'claim = "s * (1 + s)"'))
    code, _, _ = run("check", str(spec), "--resume", str(out), "--samples", "8")
    assert code == 1  # refuted: the old "proved" was not reused


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("{not json", "is not a derive results file"),
    ('{"seed": 0}', "is not a derive results file"),
])
def test_a_bad_resume_file_is_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    code, _, err = run("check", "tanh_derivative", "--resume", str(path))
    assert code == 2 and message in err and err.count("\n") == 1


SLOW_MODULE = '''
import time

from derive import Claim, Definition, Identity, Variable, ops


def _sleeps(v):
    time.sleep(120)  # in the worker that builds this identity: the run is still busy when stopped
    return ops.sigmoid(v.x)


def _sigmoid(name, forward=lambda v: ops.sigmoid(v.x)):
    return Identity(name, variables=(Variable("x"),), definitions=(Definition("s", forward),),
                    claims=(Claim(lambda v: v.s * (1 - v.s), wrt="x"),))


IDENTITIES = [_sigmoid("sigmoid_0"), _sigmoid("sigmoid_1"), _sigmoid("sleeps", _sleeps),
              _sigmoid("sigmoid_2"), _sigmoid("sigmoid_3")]
'''


def _slow_spec(tmp_path: Path) -> Path:
    """Five identities, one of which takes minutes (a proof that hangs is no longer a reliable
    way to take minutes: the ladder keeps getting faster)."""
    spec = tmp_path / "slow_identities.py"
    spec.write_text(SLOW_MODULE)
    return spec


def _wait_for_results(path: Path, count: int, proc: subprocess.Popen, limit: float = 60) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if path.exists():
            data = json.loads(path.read_text())  # valid JSON at every moment
            if len(data["results"]) >= count:
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no results in time")


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_stopping_mid_run_leaves_a_valid_results_file(tmp_path: Path, how: str) -> None:
    out = tmp_path / "r.json"
    # Ctrl-C as a terminal delivers it: the run must not inherit an ignored SIGINT from this test
    # process (a pytest-xdist worker may have one), or it would never see the signal
    proc = subprocess.Popen([*DERIVE, "check", str(_slow_spec(tmp_path)), "-j", "2", "-o", str(out),
                             "--timeout", "60", "--samples", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for_results(out, 2, proc)
        proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            tree = subprocess.run(["ps", "-eo", "pid,ppid,pgid,stat,wchan:20,args"], capture_output=True,
                                  text=True).stdout
            status = Path(f"/proc/{proc.pid}/status")
            raise AssertionError(f"derive did not stop: {status.read_text() if status.exists() else ''}\n{tree}")
    finally:
        proc.kill()
    data = json.loads(out.read_text())
    names = [r["name"] for r in data["results"]]
    assert data["complete"] is False and 2 <= len(names) < 5
    assert set(names) <= {"sigmoid_0", "sigmoid_1", "sigmoid_2", "sigmoid_3", "sleeps"}
    if how == "sigint":
        assert proc.returncode == 130
        assert f"interrupted: {len(names)} of 5 identities finished" in stderr
        assert all(name in stdout for name in names)  # the table of what finished
        assert "Traceback" not in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    # the workers and their symbolic children do not outlive the run
    deadline = time.perf_counter() + 5
    while _children_of(proc.pid) and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert _children_of(proc.pid) == []


def _children_of(pid: int) -> list[str]:
    """Processes whose command line names this run's spec (workers re-parented after a kill)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "slow.derive.toml" in cmd:
                found.append(entry.name)
    return found


def test_device_and_jobs_options_are_validated() -> None:
    code, _, err = run("check", "tanh_derivative", "--device", "tpu")
    assert code == 2 and "unknown device 'tpu'" in err
    code, _, err = run("check", "tanh_derivative", "--jobs", "-3")
    assert code == 2 and "--jobs" in err
    if not os.environ.get("CUDA_VISIBLE_DEVICES") and not _cuda():
        code, _, err = run("check", "tanh_derivative", "--device", "cuda")
        assert code == 2 and "no CUDA GPU" in err


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _without_timings(x):  # noqa: ANN001, ANN202
    if isinstance(x, dict):
        return {k: _without_timings(v) for k, v in x.items() if k != "seconds"}
    if isinstance(x, list):
        return [_without_timings(v) for v in x]
    return x


def test_the_same_seed_gives_the_same_json_with_any_number_of_jobs() -> None:
    names = ["softmax_jacobian", "relu_derivative", "bce_gradient_logit", "mlp_output_delta"]
    runs = [run("check", *names, "--json", "--samples", "16", "--seed", "7", "-j", j)[1] for j in ("0", "2", "2")]
    texts = [json.dumps(_without_timings(json.loads(r)), sort_keys=True) for r in runs]
    assert texts[0] == texts[1] == texts[2]
    assert json.loads(runs[0])["seed"] == 7
