"""Time the proof for every size of each catalog identity that has sizes.

Run: .venv/bin/python benchmarks/symbolic_n.py   (prints one line per identity, then the maximum)
"""

from __future__ import annotations

import time

from derive import catalog
from derive.symbolic.indexed_graph import size_names
from derive.symbolic.every_n_proof import work


def main() -> None:
    worst = 0.0
    for name, identity in catalog.CATALOG.items():
        if not size_names(identity):
            continue
        start = time.perf_counter()
        outcome = list(work(identity))[-1]
        seconds = time.perf_counter() - start
        worst = max(worst, seconds)
        print(f"{name:28s} {outcome.status:11s} {seconds:6.2f} s  {', '.join(outcome.methods)}")
    print(f"slowest: {worst:.2f} s")


if __name__ == "__main__":
    main()
