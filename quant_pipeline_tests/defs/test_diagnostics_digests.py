"""Factor diagnostics read forward returns, which end at the last rebalance date: prices after
it change no diagnostic (issue 14), and their digest says so."""

from datetime import date, timedelta

import polars as pl
import pytest

from quant_pipeline.core.research.factor_diagnostics import forward_returns
from quant_pipeline.defs.research import DIAGNOSED, DIAGNOSTICS_READS, diagnostics_digests
from quant_pipeline.storage.warehouse import Warehouse

DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(90)]
SCHEDULE = [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)]


def _prices(days: list[date], tickers=("A", "B", "C")) -> pl.DataFrame:
    return pl.DataFrame(
        [(t, d, 10.0 + i + k) for k, t in enumerate(tickers) for i, d in enumerate(days)],
        schema={"ticker": pl.String, "date": pl.Date, "adj_close": pl.Float64},
        orient="row",
    )


def _warehouse(path, prices: pl.DataFrame) -> Warehouse:
    wh = Warehouse(path)
    wh.replace_table("curated.prices", prices)
    wh.replace_table(
        "factors.rebalance_dates",
        pl.DataFrame({"frequency": "monthly", "rebalance_date": SCHEDULE}),
    )
    wh.replace_table(
        "factors.values_inputs", pl.DataFrame({"rebalance_date": SCHEDULE, "digest": "v"})
    )
    schema = {"strategy": pl.String, "rebalance_date": pl.Date, "digest": pl.String}
    wh.replace_table("factors.scores_inputs", pl.DataFrame(schema=schema))
    return wh


def _digest(wh: Warehouse) -> str:
    read = DIAGNOSTICS_READS.reader(wh)
    frame = diagnostics_digests(read, read("factors.rebalance_dates"), "monthly", {}, 5)
    (value,) = frame.filter(pl.col("factor").is_in(DIAGNOSED))["digest"].unique().to_list()
    return value


@pytest.fixture
def base(tmp_path) -> str:
    return _digest(_warehouse(tmp_path / "base.duckdb", _prices(DAYS[:70])))


def test_a_week_after_the_last_rebalance_date_keeps_the_digest(tmp_path, base):
    # 1 March is day 60: days 70-76 add a week after it for every ticker
    assert _digest(_warehouse(tmp_path / "week.duckdb", _prices(DAYS[:77]))) == base
    # forward returns, what the diagnostics read of the prices, are the same rows
    assert forward_returns(_prices(DAYS[:77]), SCHEDULE).equals(
        forward_returns(_prices(DAYS[:70]), SCHEDULE)
    )


def test_a_price_on_or_before_the_last_rebalance_date_changes_the_digest(tmp_path, base):
    prices = _prices(DAYS[:70]).with_columns(
        adj_close=pl.when(pl.col("date") == SCHEDULE[-1]).then(99.0).otherwise("adj_close")
    )
    assert _digest(_warehouse(tmp_path / "restated.duckdb", prices)) != base


def test_a_ticker_priced_again_after_the_last_date_changes_the_digest(tmp_path, base):
    """C stops before 1 February and trades again after 1 March: it is alive on 1 February
    only because of the later price, so that price is an input."""
    gap = [d for d in DAYS[:70] if not (DAYS[20] <= d <= DAYS[64])]
    prices = pl.concat([_prices(DAYS[:70], ("A", "B")), _prices(gap, ("C",))])
    stopped = pl.concat([_prices(DAYS[:70], ("A", "B")), _prices(DAYS[:20], ("C",))])
    before = _digest(_warehouse(tmp_path / "stopped.duckdb", stopped))
    assert _digest(_warehouse(tmp_path / "again.duckdb", prices)) != before
    assert not forward_returns(prices, SCHEDULE).equals(forward_returns(stopped, SCHEDULE))
