"""The printed comparison tables: each row's window and its benchmark over it."""

from datetime import date

import polars as pl

from quant_pipeline.app.cli import format_comparison
from quant_pipeline.core.backtest.comparison import COMPARISON_SCHEMA


def test_format_comparison_prints_each_window_and_the_benchmark_over_it():
    row = {c: None for c in COMPARISON_SCHEMA}
    row.update(
        strategy="late",
        start=date(2014, 4, 1),
        end=date(2019, 12, 31),
        trading_days=1448.0,
        cagr=0.1349,
        sharpe_ratio=0.8123,
        benchmark_cagr=0.1190,
        excess_cagr=0.0159,
    )
    text = format_comparison(pl.DataFrame([row], schema=COMPARISON_SCHEMA, orient="row"))
    header, rule, line = text.splitlines()
    assert header.split() == list(COMPARISON_SCHEMA)
    cells = line.split()
    assert cells[:4] == ["late", "2014-04-01", "2019-12-31", "1,448"]
    assert cells[-2:] == ["11.90%", "1.59%"]
    assert "13.49%" in cells and "0.81" in cells and "—" in cells
    assert set(rule.replace(" ", "")) == {"-"}
