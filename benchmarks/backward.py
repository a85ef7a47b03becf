"""derive against torch.autograd.gradcheck on the same functions and inputs, side by side.

Run:  .venv/bin/python benchmarks/backward.py [--quick] [--json FILE]

The functions under test are torch.autograd.Functions with hand-written backwards
(tests/kernels.py), new-style (setup_context, vmappable) and old-style (`forward(ctx, ...)`),
whose forwards are declared as the catalog's softmax (softmax_jacobian) and cross-entropy
(cross_entropy_gradient, one row of logits and its label). For each n and style it measures, on
the same 1,000 random inputs:
  * wall time of derive's check alone (after its one-time set-up) and of the whole call
    (check_backward, set-up included), and of gradcheck in fast and slow mode (timed on a subset
    and scaled to 1,000 inputs, marked "~");
  * the smallest relative error detected, for a backward multiplied by (1 + e), e = 1e-1 .. 1e-12;
  * false alarms on the correct backward (derive over 10,000 samples, gradcheck over its inputs);
  * whether a backward that returns all zeros is caught.
A second table runs correct softmax, cross-entropy, layer-norm, GELU and attention backwards in
float32, float16 and bfloat16, both styles, on 10,000 samples each (false alarms), and the same
backwards off by a relative 1e-5 (float32), 1e-2 (float16), 3e-2 (bfloat16): as dtype-generic
code (the float64 formula check sees it) and locked to the low precision (only the comparison
with the baseline in that precision can see it).
It also times `derive check --all` (a cold process), the explicit-size softmax proof at
n = 8, 16, 32, 64, and the peak memory of a 1,000,000-sample check at n = 256 (a child process).
Everything runs with one torch thread (both tools alike), so timings do not depend on what
else the machine runs in parallel. The table goes to stdout, the same figures to JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from derive import check_autograd_function, check_backward
from derive.usercode.backward import BackwardCheck

torch.set_num_threads(1)
ERRORS = [10.0 ** -k for k in range(1, 13)]


# --- the functions under test: tests/kernels.py ---------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import kernels  # noqa: E402


CASES = {
    "softmax": (kernels.softmax, "softmax_jacobian", lambda n: {"n": n}),
    "cross_entropy": (kernels.cross_entropy, "cross_entropy_gradient", lambda n: {"B": 1, "k": n}),
}


def gradcheck_inputs(case: str, n: int, count: int) -> list[tuple[torch.Tensor, ...]]:
    """The same inputs derive draws (its first chunk), as gradcheck arguments."""
    factory, identity, sizes = CASES[case]
    check = BackwardCheck(factory(), identity, sizes(n))
    import numpy as np
    import zlib

    rng = np.random.default_rng([0, zlib.crc32(check.identity.name.encode()), 0])
    batch = check._draw(rng, count)
    out = []
    for s in range(count):
        args = []
        for v in check.identity.variables:
            a = torch.as_tensor(batch[v.name][s])
            args.append(a.double().requires_grad_(True) if v.domain.differentiable else a.long())
        out.append(tuple(args))
    return out


def gradcheck_passes(fn: type, inputs: list[tuple[torch.Tensor, ...]], fast: bool) -> int:
    """How many inputs gradcheck (default tolerances) accepts."""
    ok = 0
    for args in inputs:
        try:
            ok += bool(torch.autograd.gradcheck(fn.apply, args, fast_mode=fast, raise_exception=True))
        except Exception:  # gradcheck raises on a mismatch
            pass
    return ok


def time_gradcheck(fn: type, inputs: list[tuple[torch.Tensor, ...]], fast: bool) -> float:
    start = time.perf_counter()
    gradcheck_passes(fn, inputs, fast)
    return (time.perf_counter() - start) / len(inputs)


# --- one case at one size ------------------------------------------------------------------------

def measure(case: str, n: int, samples: int, false_alarm_samples: int, quick: bool, style: str = "new") -> dict:
    factory, identity, sizes = CASES[case]

    def make(scale: float = 1.0, zero: bool = False) -> type:
        return factory(scale, style, zero=zero)

    start = time.perf_counter()
    check = BackwardCheck(make(), identity, sizes(n))
    setup = time.perf_counter() - start
    check.run(samples)  # warm-up (torch's first calls)
    times, whole = [], []
    for _ in range(3):
        start = time.perf_counter()
        result = check.run(samples)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        check_backward(make(), identity, sizes=sizes(n), samples=samples)
        whole.append(time.perf_counter() - start)
    assert result.verdict == "consistent", result.reason
    derive_time, whole_time = min(times), min(whole)

    fast_n = 20 if quick else 100
    slow_n = 1 if quick or n >= 1024 else 3
    inputs = gradcheck_inputs(case, n, max(fast_n, slow_n))
    fast = time_gradcheck(make(), inputs[:fast_n], True) * samples
    slow = time_gradcheck(make(), inputs[:slow_n], False) * samples

    def detected_by_derive(e: float) -> bool:
        return BackwardCheck(make(scale=1 + e), identity, sizes(n)).run(samples).verdict == "refuted"

    detect_inputs = inputs[:5]

    def smallest(detects) -> float | None:  # noqa: ANN001
        found = None
        for e in ERRORS:
            if not detects(e):
                break
            found = e
        return found

    d_derive = smallest(detected_by_derive)
    d_fast = smallest(lambda e: gradcheck_passes(make(scale=1 + e), detect_inputs, True) < len(detect_inputs))
    # slow mode takes seconds per input beyond n = 256: its detection is measured up to there
    d_slow = smallest(lambda e: gradcheck_passes(make(scale=1 + e), detect_inputs[:2], False) < 2) \
        if n <= 256 else "not measured"
    alarms = BackwardCheck(make(), identity, sizes(n)).run(false_alarm_samples)
    false_derive = 0 if alarms.verdict != "refuted" else alarms.counterexample["failing"]
    false_fast = len(inputs[:fast_n]) - gradcheck_passes(make(), inputs[:fast_n], True)
    zero_derive = BackwardCheck(make(zero=True), identity, sizes(n)).run(samples).verdict == "refuted"
    zero_fast = gradcheck_passes(make(zero=True), inputs[:fast_n], True) < fast_n
    zero_slow = gradcheck_passes(make(zero=True), inputs[:1], False) < 1
    return {"case": case, "style": style, "n": n, "samples": samples, "setup_s": setup, "derive_s": derive_time,
            "derive_whole_call_s": whole_time, "speedup_whole_vs_fast": fast / whole_time,
            "gradcheck_fast_s": fast, "gradcheck_fast_timed_inputs": fast_n,
            "gradcheck_slow_s": slow, "gradcheck_slow_timed_inputs": slow_n,
            "speedup_vs_fast": fast / derive_time, "speedup_vs_slow": slow / derive_time,
            "smallest_detected": {"derive": d_derive, "gradcheck_fast": d_fast, "gradcheck_slow": d_slow},
            "false_alarms": {"derive": false_derive, "derive_samples": false_alarm_samples,
                             "gradcheck_fast": false_fast, "gradcheck_fast_inputs": fast_n},
            "all_zeros_caught": {"derive": zero_derive, "gradcheck_fast": zero_fast, "gradcheck_slow": zero_slow}}


# --- whole-program figures -----------------------------------------------------------------------

def time_check_all() -> float:
    derive = Path(sys.executable).with_name("derive")
    start = time.perf_counter()
    done = subprocess.run([str(derive), "check", "--all"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"derive check --all failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def time_softmax_proofs() -> dict[int, float]:
    from derive import catalog
    from derive.symbolic.proof import prove_claim
    from derive.symbolic.graph import build, derive

    out = {}
    for n in (8, 16, 32, 64):
        start = time.perf_counter()
        graph = build(catalog.get("softmax_jacobian"), {"n": n})
        claim = graph.claims[0]
        proof = prove_claim(claim.expr - derive(graph).derived[claim.index], graph)
        assert proof.proved, proof.detail
        out[n] = time.perf_counter() - start
    return out


def peak_memory_million() -> dict:
    """A child process checks 1,000,000 samples at n = 256; its peak resident set size."""
    code = ("import torch; torch.set_num_threads(1); import sys;"
            "sys.path.insert(0, 'tests'); import kernels; from derive.usercode.backward import check_backward;"
            "r = check_backward(kernels.softmax(), 'softmax_jacobian', sizes={'n': 256}, samples=1_000_000);"
            "print(r.verdict)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"verdict": done.stdout.strip() or done.stderr.strip()[-200:], "seconds": seconds,
            "peak_bytes": peak}


def fmt(e: float | str | None) -> str:
    if isinstance(e, str):
        return "-"
    return "none" if e is None else f"{e:.0e}"


# --- low precision ------------------------------------------------------------------------------

WRONG = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 3e-2}
"""The relative error each precision must catch (issue: user code as it really runs)."""
LOW = {
    "softmax": lambda f, dt, n, **kw: check_backward(f, "softmax_jacobian", sizes={"n": 256}, samples=n, dtype=dt),
    "cross_entropy": lambda f, dt, n, **kw: check_backward(f, "cross_entropy_gradient", sizes={"B": 4, "k": 256},
                                                           samples=n, dtype=dt),
    "layer_norm": lambda f, dt, n, **kw: check_backward(f, "layer_norm_backward", sizes={"n": 256}, samples=n,
                                                        dtype=dt),
    "gelu": lambda f, dt, n, **kw: check_autograd_function(
        f, args=(torch.randn(256, generator=torch.Generator().manual_seed(0)).to(getattr(torch, dt)),), samples=n),
    "attention": lambda f, dt, n, **kw: check_backward(f, "attention_backward",
                                                       sizes={"n": 32, "m": 32, "d": 16, "e": 16}, samples=n, dtype=dt),
}
LOW_SIZES = {"softmax": "n=256", "cross_entropy": "B=4, k=256", "layer_norm": "n=256", "gelu": "n=256",
             "attention": "n=m=32, d=e=16"}


def low_precision(samples: int, detect_samples: int) -> list[dict]:
    rows = []
    for case, run in LOW.items():
        factory = getattr(kernels, case)
        for dtype, e in WRONG.items():
            for style in ("new", "old"):
                start = time.perf_counter()
                right = run(factory(1.0, style), dtype, samples)
                seconds = time.perf_counter() - start
                low = next(x for x in right.sizes if x.numeric and x.numeric[0].dtype == dtype)
                generic = run(factory(1 + e, style), dtype, detect_samples).verdict
                locked = run(factory(1 + e, style, lock=getattr(torch, dtype)), dtype, detect_samples)
                locked_right = run(factory(1.0, style, lock=getattr(torch, dtype)), dtype, detect_samples).verdict
                rows.append({"case": case, "sizes": LOW_SIZES[case], "dtype": dtype, "style": style,
                             "samples": samples, "verdict": right.verdict, "seconds": seconds,
                             "detectable_rel_error": low.numeric[0].rtol, "reason": low.reason,
                             "wrong_by": e, "wrong_generic": generic, "wrong_locked": locked.verdict,
                             "right_locked": locked_right})
                print(f"  {case:13s} {dtype:8s} {style:3s} {right.verdict:10s} {seconds:6.1f}s  detects "
                      f"{low.numeric[0].rtol:8.2g}   x(1+{e:g}): {generic:8s} locked {locked.verdict:8s} "
                      f"(right, locked: {locked_right})", flush=True)
    return rows


def every_catalog_identity() -> None:
    """check_backward takes every catalog identity whose forward has a torch form."""
    from derive import catalog

    bad = 0
    for name in catalog.names():
        identity = catalog.get(name)
        if not identity.references:
            print(f"  {name:34s} no torch reference")
            continue
        start = time.perf_counter()
        result = check_backward(identity.references[0].forward, identity, samples=100)
        bad += result.verdict != "consistent"
        print(f"  {name:34s} {result.verdict:11s} {time.perf_counter() - start:5.2f}s")
    print(f"{bad} not consistent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 16 and 256 only, fewer gradcheck inputs and "
                                                              "low-precision samples, no 1,000,000-sample run")
    parser.add_argument("--json", default="benchmarks/out/backward.json", help="where to write the figures")
    parser.add_argument("--catalog", action="store_true", help="only: check_backward on every catalog identity "
                                                               "with a torch reference (the reference as the function)")
    args = parser.parse_args()
    if args.catalog:
        every_catalog_identity()
        return
    sizes = (16, 256) if args.quick else (16, 64, 256, 1024)
    rows = [measure(case, n, 1000, 1000 if args.quick else 10_000, args.quick, style)
            for case in CASES for n in sizes for style in ("new", "old")]
    print(f"{'case':14s} {'style':5s} {'n':>5s} {'derive':>9s} {'whole':>9s} {'gc fast':>9s} {'gc slow':>9s} "
          f"{'x fast':>7s} {'x slow':>8s}  {'detects (derive / fast / slow)':31s} {'false alarms':>13s}  "
          "zeros caught (d/f/s)")
    for r in rows:
        d = r["smallest_detected"]
        z = r["all_zeros_caught"]
        print(f"{r['case']:14s} {r['style']:5s} {r['n']:5d} {r['derive_s'] * 1e3:7.1f}ms "
              f"{r['derive_whole_call_s'] * 1e3:7.1f}ms {r['gradcheck_fast_s']:8.2f}s~"
              f"{r['gradcheck_slow_s']:8.1f}s~ {r['speedup_whole_vs_fast']:6.0f}x {r['speedup_vs_slow']:7.0f}x"
              f"  {fmt(d['derive']):>8s} / {fmt(d['gradcheck_fast']):>6s} / {fmt(d['gradcheck_slow']):>6s}     "
              f"{r['false_alarms']['derive']:>4d} / {r['false_alarms']['gradcheck_fast']:<4d}"
              f"   {'yes' if z['derive'] else 'NO'}/{'yes' if z['gradcheck_fast'] else 'NO'}/"
              f"{'yes' if z['gradcheck_slow'] else 'NO'}")
    print("(1,000 inputs per row; derive = the check after its set-up, whole = check_backward with set-up; x fast "
          "and x slow compare gradcheck with the whole call and the check; '~' gradcheck timed on a subset and scaled "
          "to 1,000; false alarms: derive over 10,000 samples / gradcheck fast over its timed inputs; detects: none = "
          "not even 1e-1, - = not measured)")
    print("low precision (correct backwards, 10,000 samples; wrong ones and locked ones, 1,000):")
    low_rows = low_precision(1000 if args.quick else 10_000, 1000)
    proofs = time_softmax_proofs()
    print("softmax Jacobian proved at explicit n: " + ", ".join(f"n={n} {s:.2f}s" for n, s in proofs.items()))
    check_all = time_check_all()
    print(f"derive check --all (cold process): {check_all:.1f} s")
    figures = {"rows": rows, "low_precision": low_rows, "softmax_proof_s": proofs, "check_all_s": check_all,
               "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    if not args.quick:
        big = peak_memory_million()
        figures["million_samples_n256"] = big
        print(f"1,000,000 samples at n=256: {big['verdict']} in {big['seconds']:.0f} s, "
              f"peak memory {big['peak_bytes'] / 2**30:.2f} GiB")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
