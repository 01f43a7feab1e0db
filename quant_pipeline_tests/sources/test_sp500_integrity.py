"""The real S&P 500 folder: point-in-time membership, and the lookahead audit passes on it."""

from datetime import date

import polars as pl
import pytest

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.backtest.lookahead_audit import audit_lookahead, sample_dates
from quant_pipeline.core.data import curation as curate
from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
from quant_pipeline.core.factors.point_in_time import point_in_time_factor_values
from quant_pipeline.core.strategies.scoring import score, with_country
from quant_pipeline.sources.base import FetchRequest
from quant_pipeline.sources.files import FilesSource


@pytest.fixture(scope="module")
def sp500_curated(sp500_dir):
    source = FilesSource(sp500_dir)
    request = FetchRequest()
    prices = curate.curate_prices(source.prices(request), source.corporate_actions(request))
    return {
        "prices": prices.prices,
        "vintages": curate.fundamentals_vintages(source.fundamentals(request)),
        "securities": curate.curate_securities(source.securities(request)),
        "membership": curate.curate_membership(source.membership(request)),
    }


def members(membership: pl.DataFrame, on: date) -> set[str]:
    inside = (pl.col("start_date") <= on) & (
        pl.col("end_date").is_null() | (pl.col("end_date") >= on)
    )
    return set(membership.filter(inside)["ticker"])


@pytest.mark.parametrize("on", [date(2014, 1, 2), date(2016, 1, 4), date(2017, 12, 1)])
def test_sp500_has_about_500_members_on_each_date(sp500_curated, on):
    assert 495 <= len(members(sp500_curated["membership"], on)) <= 510


def test_removal_dates_become_last_member_days_so_replacements_do_not_overlap(sp500_curated):
    membership = sp500_curated["membership"]
    # File: AVP removed and AAL added on 2015-03-23. AVP's last day is Friday 2015-03-20.
    assert "AVP" in members(membership, date(2015, 3, 20))
    assert "AVP" not in members(membership, date(2015, 3, 23))
    assert "AAL" in members(membership, date(2015, 3, 23))


def test_a_rebalance_selects_members_on_that_date_including_ones_that_left_later(sp500_curated):
    data = sp500_curated
    dates = [date(2013, 7, 1), date(2014, 1, 2), date(2016, 1, 4), date(2017, 12, 1)]
    values = point_in_time_factor_values(
        data["prices"], data["vintages"], data["securities"], dates, data["membership"]
    )
    for d in dates:
        on_d = values.filter(pl.col("rebalance_date") == d)
        chosen = set(on_d.filter("in_universe")["ticker"])
        # Exactly the members of that date among the tickers priced before it: nobody who
        # joined later (DXC, APTV, BHGE stand for older companies whose prices the file lacks).
        assert chosen == members(data["membership"], d) & set(on_d["ticker"]), d
    in_2013 = set(
        values.filter(pl.col("rebalance_date") == dates[0]).filter("in_universe")["ticker"]
    )
    # AMD left the index on 2013-09-23 (and came back on 2017-03-20): a member in July 2013,
    # not in 2014 or 2016, although it traded throughout.
    assert "AMD" in in_2013
    for d in dates[1:3]:
        row = values.filter((pl.col("rebalance_date") == d) & (pl.col("ticker") == "AMD"))
        assert row["in_universe"].to_list() == [False]
    # ALGN joined on 2017-06-19: priced since 2013, but not selectable before it joined.
    algn = values.filter(pl.col("ticker") == "ALGN").sort("rebalance_date")
    assert algn["in_universe"].to_list() == [False, False, False, True]
    # Renamed companies: the membership file's BKNG is matched to the price file's PCLN.
    assert "PCLN" in members(data["membership"], date(2016, 1, 4))
    # 2017-12-01: 506 members, 503 selectable: BCR (acquired before the price file was made)
    # and CPRI (a duplicate of KORS in the membership file) have no prices, and APTV's prices
    # start on 2017-12-05 (Delphi's earlier history is not in the file).
    assert len(chosen) == 503


def test_lookahead_audit_passes_on_the_sp500_dataset(sp500_curated):
    data = sp500_curated
    dates = rebalance_dates(trading_days(data["prices"]), "quarterly")
    values = point_in_time_factor_values(
        data["prices"], data["vintages"], data["securities"], dates, data["membership"]
    )
    specs = {n: s for n, s in load_strategies().items() if s.scored}
    with_countries = with_country(values, data["securities"])
    scores = pl.concat([score(with_countries, spec)[0] for spec in specs.values()])
    result = audit_lookahead(
        values,
        scores,
        data["prices"],
        data["vintages"],
        data["securities"],
        data["membership"],
        specs,
        sample_dates(values["rebalance_date"].unique(), 4),
    )
    assert result.passed, result.message()
    assert result.rows_compared > 1500
