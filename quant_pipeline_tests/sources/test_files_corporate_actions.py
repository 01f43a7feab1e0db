"""A corporate-actions file in the files layout corrects a spin-off and a share dividend.

Price-only files (like the S&P 500 folder) book BAX's spin-off of Baxalta on 2015-07-01 and
DISCA's share dividend of DISCK on 2014-08-07 as one-day losses. Tiny folder: P falls 70 -> 38.5
on its spin-off day (30 of value distributed per share); Q falls 40 -> 20.4 on a one-for-one
share dividend.
"""

from __future__ import annotations

import polars as pl
import pytest

from quant_pipeline.core.data import curation as curate
from quant_pipeline.core.data.suspect_moves import suspect_moves
from quant_pipeline.sources.base import FetchRequest, SourceError
from quant_pipeline.sources.files import FilesSource

PRICES = """ticker,date,close
P,2024-01-02,70
P,2024-01-03,38.5
P,2024-01-04,39
Q,2024-01-02,40
Q,2024-01-03,40
Q,2024-01-04,20.4
"""
ACTIONS = """ticker,date,action,value
P,2024-01-03,spinoff,30
Q,2024-01-04,stock_dividend,1
"""


def curated(folder) -> tuple[pl.DataFrame, pl.DataFrame]:
    source = FilesSource(folder)
    actions = curate.curate_actions(source.corporate_actions(FetchRequest()))
    prices = curate.curate_prices(source.prices(FetchRequest()), actions).prices
    return prices, actions


def test_without_the_file_both_days_are_suspect_moves(tmp_path):
    (tmp_path / "prices.csv").write_text(PRICES)
    source = FilesSource(tmp_path)
    prices = curate.curate_prices(source.prices(FetchRequest())).prices
    moves = suspect_moves(prices, None, 0.4)
    assert moves.select("ticker", "size").rows() == [
        ("P", pytest.approx(38.5 / 70 - 1)),
        ("Q", pytest.approx(20.4 / 40 - 1)),
    ]


def test_with_the_file_the_adjusted_prices_have_ordinary_returns_and_no_suspect_move(tmp_path):
    (tmp_path / "prices.csv").write_text(PRICES)
    (tmp_path / "corporate_actions.csv").write_text(ACTIONS)
    prices, actions = curated(tmp_path)
    returns = dict(
        prices.filter(pl.col("date") > pl.date(2024, 1, 2))
        .select(pl.concat_str("ticker", pl.col("date").cast(pl.String)), "daily_return")
        .iter_rows()
    )
    # P before the spin-off x 38.5 / (38.5 + 30): the holder's (38.5 + 30) / 70 - 1 = -2.14%
    assert returns["P2024-01-03"] == pytest.approx(68.5 / 70 - 1)
    # Q before the share dividend x 1/2: 40 -> 20, so 20.4 / 20 - 1 = +2%
    assert returns["Q2024-01-04"] == pytest.approx(0.02)
    assert suspect_moves(prices, actions, 0.4).is_empty()


def test_an_unknown_action_names_the_file_lines_and_the_allowed_actions(tmp_path):
    (tmp_path / "prices.csv").write_text(PRICES)
    (tmp_path / "corporate_actions.csv").write_text(ACTIONS + "P,2024-01-04,merger,1\n")
    with pytest.raises(SourceError, match=r"corporate_actions.csv: column 'action'.*lines \[4\]"):
        FilesSource(tmp_path).corporate_actions(FetchRequest())
