"""Check the two PyTorch-rule example files whole, as `derive check` does, and print the counts
and wall times the README quotes.

Run: .venv/bin/python benchmarks/pytorch_rules.py   (about a minute on two cores)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = {"pytorch_rules.derive.toml": {"proved", "consistent"},
         "pytorch_rules_wrong.derive.toml": {"refuted"}}


def main() -> int:
    failed = False
    for name, allowed in FILES.items():
        path = ROOT / "examples" / name
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "derive", "check", str(path), "--json", "--no-progress"],
                             capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        results = json.loads(out.stdout)["results"]
        counts = Counter(r["verdict"] for r in results)
        off = [(r["name"], r["verdict"]) for r in results if r["verdict"] not in allowed]
        failed |= bool(off)
        print(f"{name}: {len(results)} rules, {dict(sorted(counts.items()))}, {seconds:.1f} s wall "
              f"(exit code {out.returncode}){'; unexpected: ' + str(off) if off else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
