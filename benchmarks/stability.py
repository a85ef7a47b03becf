"""How long the stability analysis takes, and what it finds, on the catalog and the example.

Run:  .venv/bin/python benchmarks/stability.py [--jobs N] [--json FILE]

Times `derive stability --all` and `derive stability examples/stability.derive.toml` as cold
processes (imports included; the issue asks for --all under 30 s on 2 cores), and prints, for
the example's textbook forms, the float32 region, cause and proved rewrite with its bits lost.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "derive", "stability", *args, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"derive stability {' '.join(args)} failed: {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None, help="workers (default: the CPU count)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    jobs = [] if args.jobs is None else ["--jobs", str(args.jobs)]
    figures: dict = {}
    seconds, data = _run(["--all", *jobs])
    flagged = [r["name"] for r in data["results"] if r["stability"]]
    figures["all"] = {"seconds": round(seconds, 2), "identities": len(data["results"]), "flagged": len(flagged),
                      "entries": sum(len(r["stability"]) for r in data["results"])}
    print(f"derive stability --all: {seconds:.1f} s, {len(data['results'])} identities, "
          f"{len(flagged)} with a formula that loses more than half its bits")
    seconds, data = _run(["examples/stability.derive.toml", *jobs])
    figures["example"] = {"seconds": round(seconds, 2), "formulas": []}
    print(f"derive stability examples/stability.derive.toml: {seconds:.1f} s")
    for r in data["results"]:
        for e in r["stability"]:
            if e["dtype"] != "float32" or "(" in e["formula"].split(" = ")[0]:
                continue
            rw = e["rewrite"]
            figures["example"]["formulas"].append({"identity": r["name"], **e})
            print(f"  {r['name']}: {e['formula'][:60]}\n    float32: {e['bits_lost_worst']:g} bits lost; "
                  f"{e['region']}; {e['cause']} in {e['subexpression']}"
                  + (f"\n    rewrite: {rw['formula']} ({rw['bits_lost_worst']:g} bits)" if rw else ""))
        if not r["stability"]:
            print(f"  {r['name']}: no formula loses more than half its bits")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
