"""Markdown tables from harness results, for the README's Performance section.

    python -m benchmarks.report benchmarks/results/<run>.json [more.json ...]

One column per size (tickers): wall seconds (best of the runs, with the min-max spread when a
stage ran several times) and peak resident memory per stage, then throughput of the whole chain.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.run import STAGES


def _cell(r: dict) -> str:
    walls = r.get("seconds_all", [r["seconds"]])
    spread = f" ({min(walls):.1f}–{max(walls):.1f})" if len(walls) > 1 else ""
    return f"{r['seconds']:.1f}{spread} s · {r['peak_rss_mb'] / 1024:.2f} GiB"


def markdown(results: list[dict]) -> str:
    sizes = sorted({r["tickers"] for r in results})
    by = {(r["tickers"], r["stage"]): r for r in results}
    rows = {t: next(r["price_rows"] for r in results if r["tickers"] == t) for t in sizes}
    head = "| stage | " + " | ".join(f"{t:,} tickers ({rows[t] / 1e6:.1f}M rows)" for t in sizes)
    lines = [head + " |", "|---|" + "---|" * len(sizes)]
    for stage in STAGES:
        if not any((t, stage) in by for t in sizes):
            continue
        cells = [_cell(by[t, stage]) if (t, stage) in by else "—" for t in sizes]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    rates = []
    for t in sizes:
        full = by.get((t, "dagster_full"))
        rates.append(f"{rows[t] / full['seconds'] / 1e3:.0f}k rows/s" if full else "—")
    lines.append("| full chain throughput | " + " | ".join(rates) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    results = [r for p in paths for r in json.loads(p.read_text())["results"]]
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
