"""Staggered holdings (kind ``staggered``): buy a few names each rebalance, hold each a fixed time.

The QuantConnect form of Greenblatt's magic formula: every month buy the next 2 best-ranked names
not already held and keep each for 12 months, so the book fills to about 24 positions after a
year and then turns over 1/12 each month. Input is ``factors.scores`` of one strategy (ranked per
rebalance date exactly as for a factor strategy), so the timing rules of core.factors.values hold.

Per rebalance date D, in date order (a loop over dates: what is bought depends on what is held):

1. a held name is sold when it has been held ``hold_periods`` rebalances, or when it has no row
   in the scores of D (no price in the last weeks before D: delisted or halted);
2. free slots = top_n - held; the best-ranked eligible names not held are bought, at most
   ``buy_per_rebalance`` and at most ``floor(max_sector_weight x top_n)`` per sector;
3. weights: ``slot`` sizing gives each name 1 / top_n (the rest is cash while the book fills);
   ``equal`` gives 1 / number held.

The share-based backtest does not resize a held name (``TradingModel.resize_held`` is false for
this kind): each date it sells the expired lots and buys the new names with the freed cash, as a
buy-and-hold book would (the weights engine, which trades to every target, trims them instead).
"""

from __future__ import annotations

import polars as pl

from quant_pipeline.core.data.frames import require_columns
from quant_pipeline.core.strategies.spec import StrategySpec
from quant_pipeline.core.strategies.target_weights import (
    REPORT_SCHEMA,
    SCORE_COLUMNS,
    WEIGHTS_SCHEMA,
    names_per_sector,
)

BY = "rebalance_date"


def staggered_weights(
    scores: pl.DataFrame, spec: StrategySpec
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Target weights and constraint report of a ``staggered`` strategy (see module docstring).

    ``scores``: factors.scores rows of this strategy (rebalance_date, ticker, sector, eligible,
    score, rank). Returns (portfolio.target_weights rows, portfolio.constraint_report rows) in the
    schemas of core.strategies.target_weights; a name sold on D gets a weight-0 row on D, so a date
    whose book empties still sells to cash. Weights sum to <= 1 per date.
    """
    if spec.staggered is None or spec.portfolio is None:
        raise ValueError(f"strategy {spec.name!r} is not of kind staggered")
    require_columns(scores, SCORE_COLUMNS, "factors.scores")
    rules, top_n = spec.staggered, spec.portfolio.top_n
    per_sector = names_per_sector(spec)
    held: dict[str, tuple[int, str]] = {}  # ticker -> (period bought, sector bucket)
    rows: list[tuple] = []
    report: list[tuple] = []
    frames = scores.sort(BY, "rank", "ticker", nulls_last=True).partition_by(
        BY, maintain_order=True, as_dict=True
    )
    for period, ((day,), frame) in enumerate(frames.items()):
        present = set(frame["ticker"].to_list())
        sold = [
            t
            for t, (bought, _) in held.items()
            if period - bought >= rules.hold_periods or t not in present
        ]
        for t in sold:
            del held[t]
        counts: dict[str, int] = {}
        for _, bucket in held.values():
            counts[bucket] = counts.get(bucket, 0) + 1
        room = min(rules.buy_per_rebalance, top_n - len(held))
        ranked = frame.filter(pl.col("eligible") & pl.col("rank").is_not_null())
        for t, sector in zip(ranked["ticker"], ranked["sector"], strict=True):
            if room <= 0:
                break
            bucket = sector or "<unknown>"
            if t in held or counts.get(bucket, 0) >= per_sector:
                continue
            held[t] = (period, bucket)
            counts[bucket] = counts.get(bucket, 0) + 1
            room -= 1
        weight = 1.0 / top_n if rules.sizing == "slot" else 1.0 / max(len(held), 1)
        info = {
            t: (s, sc, r)
            for t, s, sc, r in zip(
                frame["ticker"], frame["sector"], frame["score"], frame["rank"], strict=True
            )
        }
        for t in sorted({*held, *sold}):
            sector, sc, r = info.get(t, (None, None, None))
            if sector is None and t in held:
                sector = None if held[t][1] == "<unknown>" else held[t][1]
            rows.append((spec.name, day, t, sector, weight if t in held else 0.0, sc, r))
        largest = max(counts.values(), default=0)
        n = len(held)
        note = "" if n == top_n else f"{n} of {top_n} positions held (book filling or few names)"
        report.append(
            (
                spec.name,
                day,
                int(ranked.height),
                n,
                top_n,
                largest * weight if n else None,
                spec.portfolio.max_sector_weight,
                spec.portfolio.max_sector_weight is None
                or largest * weight <= spec.portfolio.max_sector_weight + 1e-9,
                note,
            )
        )
    weights = pl.DataFrame(rows, schema=WEIGHTS_SCHEMA, orient="row").sort(BY, "ticker")
    return weights, pl.DataFrame(report, schema=REPORT_SCHEMA, orient="row")
