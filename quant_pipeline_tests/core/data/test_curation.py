from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.data.curation import (
    CURATED_FUNDAMENTAL_COLUMNS,
    CURATED_PRICE_COLUMNS,
    adjusted_close,
    curate_actions,
    curate_fundamentals,
    curate_membership,
    curate_prices,
    curate_securities,
    fundamentals_as_of,
    latest_rows,
)
from quant_pipeline.core.data.schema import (
    FIRST_SHARES,
    FUNDAMENTAL_ITEMS,
    RAW_CORPORATE_ACTIONS,
    RAW_FUNDAMENTALS,
    RAW_MEMBERSHIP,
    RAW_PRICES,
    RAW_SECURITIES,
    conform,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 6, 1, tzinfo=UTC)

# A: 2:1 split on 2024-01-04, $1 dividend ex on Saturday 2024-01-06 (lands on Monday 01-08,
# previous close 50 -> multiplier 1 - 1/50 = 0.98), a split after the last row (ignored).
DATES = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 8), date(2024, 1, 9)]
CLOSES_A = [100.0, 102.0, 50.0, 49.0, 50.0]
ACTIONS = pl.DataFrame(
    {
        "ticker": ["A", "A", "A"],
        "date": [date(2024, 1, 4), date(2024, 1, 6), date(2024, 2, 1)],
        "action": ["split", "dividend", "split"],
        "value": [2.0, 1.0, 3.0],
    }
)


def raw_prices(rows: dict[str, list]) -> pl.DataFrame:
    rows = {
        "source": ["demo"] * len(rows["ticker"]),
        "ingested_at": [T0] * len(rows["ticker"]),
    } | rows
    return conform(pl.DataFrame(rows), RAW_PRICES)


def test_adjusted_close_applies_split_and_dividend_to_earlier_prices_only():
    prices = pl.DataFrame({"ticker": ["A"] * 5, "date": DATES, "close": CLOSES_A})
    out = adjusted_close(prices, ACTIONS)
    # factors: rows before the split also carry the dividend: 0.5 * 0.98 = 0.49
    # 100 * 0.49 = 49.0, 102 * 0.49 = 49.98, 50 * 0.98 = 49.0, 49 * 1 = 49.0, 50 (last row)
    expected = prices.with_columns(adj_close=pl.Series([49.0, 49.98, 49.0, 49.0, 50.0]))
    assert_frame_equal(out, expected, abs_tol=1e-12)


def test_adjusted_close_without_actions_equals_close():
    prices = pl.DataFrame({"ticker": ["B", "B"], "date": DATES[:2], "close": [10.0, 11.0]})
    out = adjusted_close(prices, None)
    assert out["adj_close"].to_list() == [10.0, 11.0]


def naive_adjusted_close(closes: list[float], dates: list[date], actions: list[tuple]) -> list:
    """Independent loop: for each row multiply in every later action's multiplier."""
    out = []
    for d, c in zip(dates, closes, strict=True):
        factor = 1.0
        for adate, kind, value in actions:
            j = next((k for k, dk in enumerate(dates) if dk >= adate), None)
            if j is None or j == 0 or dates[j] <= d:
                continue
            factor *= 1 / value if kind == "split" else 1 - value / closes[j - 1]
        out.append(c * factor)
    return out


def test_a_split_on_file_that_the_close_does_not_show_is_not_applied_twice():
    # split-adjusted closes (no fall on 2024-01-04) with the 2:1 split also on file
    prices = pl.DataFrame({"ticker": ["A"] * 3, "date": DATES[:3], "close": [50.0, 51.0, 50.0]})
    split = ACTIONS.head(1)
    out = adjusted_close(prices, split)
    assert out["adj_close"].to_list() == [50.0, 51.0, 50.0]
    # as traded (100 -> 50 on the split day) it applies: 100 x 1/2, 102 x 1/2
    traded = prices.with_columns(close=pl.Series([100.0, 102.0, 50.0]))
    assert adjusted_close(traded, split)["adj_close"].to_list() == [50.0, 51.0, 50.0]


def test_adjusted_close_matches_a_naive_loop_on_random_data():
    rng = np.random.default_rng(7)
    dates = [date(2020, 1, 1) + (date(2020, 1, 2) - date(2020, 1, 1)) * k for k in range(60)]
    frames, expected = [], []
    action_rows = []
    for ticker in ["X", "Y", "Z"]:
        closes = list(50 + rng.random(60) * 10)
        acts = [
            (dates[int(rng.integers(1, 60))], "split", float(rng.integers(2, 4))),
            (dates[int(rng.integers(0, 60))], "dividend", float(rng.random())),
            (dates[int(rng.integers(0, 60))], "dividend", float(rng.random())),
        ]
        # as traded, the close falls by the split ratio on the split day (a split that does not
        # show in the close is already in the prices and is not applied again)
        split_day, _, ratio = acts[0]
        closes = [c / ratio if d >= split_day else c for d, c in zip(dates, closes, strict=True)]
        frames.append(pl.DataFrame({"ticker": ticker, "date": dates, "close": closes}))
        expected += naive_adjusted_close(closes, dates, acts)
        action_rows += [(ticker, d, k, v) for d, k, v in acts]
    actions = pl.DataFrame(action_rows, schema=["ticker", "date", "action", "value"], orient="row")
    out = adjusted_close(pl.concat(frames), actions)
    np.testing.assert_allclose(out["adj_close"].to_numpy(), np.array(expected), rtol=1e-12)


def test_curate_prices_computes_adj_close_from_actions_and_daily_returns():
    raw = raw_prices({"ticker": ["A"] * 5, "date": DATES, "close": CLOSES_A, "volume": [1.0] * 5})
    out = curate_prices(raw, ACTIONS)
    assert out.rejected.height == 0
    assert out.prices.columns == list(CURATED_PRICE_COLUMNS)
    # adj 49, 49.98, 49, 49, 50 -> returns null, 49.98/49-1 = 0.02, 49/49.98-1 = -1/51,
    # 49/49-1 = 0 (the dividend offsets the drop), 50/49-1 = 1/49
    expected = [None, 0.02, -1 / 51, 0.0, 1 / 49]
    got = out.prices["daily_return"].to_list()
    assert got[0] is None
    np.testing.assert_allclose(got[1:], expected[1:], atol=1e-12)


def test_curate_prices_keeps_source_adj_close_and_restarts_returns_per_ticker():
    raw = raw_prices(
        {
            "ticker": ["A", "A", "B", "B"],
            "date": DATES[:2] * 2,
            "close": [10.0, 11.0, 20.0, 30.0],
            "adj_close": [5.0, 6.0, None, None],
        }
    )
    prices = curate_prices(raw).prices
    expected = pl.DataFrame(
        {
            "ticker": ["A", "A", "B", "B"],
            "adj_close": [5.0, 6.0, 20.0, 30.0],  # B has no adj_close and no actions: close
            "daily_return": [None, 0.2, None, 0.5],  # 6/5-1, first B row null, 30/20-1
        }
    )
    assert_frame_equal(prices.select(expected.columns), expected, abs_tol=1e-12)


def test_curate_prices_rejects_bad_rows_with_reasons_and_keeps_latest_vintage():
    d = [date(2024, 1, k) for k in range(2, 9)]
    raw = raw_prices(
        {
            "ticker": ["A"] * 7,
            "date": d,
            "high": [None, None, 1.0, None, None, None, None],
            "low": [None, None, 2.0, None, None, None, None],
            "close": [10.0, None, 1.5, -1.0, float("nan"), 12.0, 0.0],
            "volume": [1.0, 1.0, 1.0, 1.0, 1.0, -5.0, -1.0],
        }
    )
    # a later fetch corrects the first row's close: the corrected vintage wins
    correction = raw.head(1).with_columns(close=pl.lit(11.0), ingested_at=pl.lit(T1))
    out = curate_prices(pl.concat([raw, correction]))
    assert out.prices.select("date", "close").rows() == [(d[0], 11.0)]
    assert out.rejected.select("date", "reason").rows() == [
        (d[1], "close is null"),
        (d[2], "high < low"),
        (d[3], "close <= 0"),
        (d[4], "close is not finite"),
        (d[5], "volume < 0"),
        (d[6], "close <= 0; volume < 0"),
    ]


def test_curate_prices_refuses_rows_of_several_sources():
    raw = raw_prices({"ticker": ["A", "A"], "date": DATES[:2], "close": [1.0, 2.0]})
    raw = raw.with_columns(source=pl.Series(["demo", "yahoo"]))
    with pytest.raises(ValueError, match="one source"):
        curate_prices(raw)


def fundamentals(rows: list[tuple]) -> pl.DataFrame:
    """rows: (ticker, period_end, period_type, item, value, report_date, ingested_at)."""
    frame = pl.DataFrame(
        rows,
        schema=[
            "ticker",
            "period_end",
            "period_type",
            "item",
            "value",
            "report_date",
            "ingested_at",
        ],
        orient="row",
    ).with_columns(source=pl.lit("demo"))
    return conform(frame, RAW_FUNDAMENTALS)


Q = [date(2023, 3, 31), date(2023, 6, 30), date(2023, 9, 30), date(2023, 12, 31)]
# 2024-03-31 is missing: the next two quarters cannot form four consecutive quarters.
Q_AFTER_GAP = [date(2024, 6, 30), date(2024, 9, 30)]


def fundamentals_fixture() -> pl.DataFrame:
    rows = [
        ("A", q, "Q", "revenue", v, None, T0)
        for q, v in zip(Q, [10.0, 11.0, 12.0, 13.0], strict=True)
    ]
    rows += [
        ("A", q, "Q", "revenue", v, None, T0)
        for q, v in zip(Q_AFTER_GAP, [15.0, 16.0], strict=True)
    ]
    rows += [("A", q, "Q", "net_income", 1.0, None, T0) for q in [Q[0], Q[2], Q[3]]]
    rows += [
        ("A", Q[0], "Q", "total_assets", 100.0, date(2023, 5, 5), T0),
        ("A", Q[0], "Q", "revenue", 9.0, date(2023, 5, 10), T1),  # restatement, later vintage
        ("A", Q[0], "Q", "not_an_item", 1.0, date(2023, 6, 1), T0),  # ignored
        ("A", Q[3], "A", "revenue", 46.0, None, T0),
    ]
    return fundamentals(rows)


def test_curate_fundamentals_pivots_latest_vintage_and_computes_ttm_with_gaps_null():
    out = curate_fundamentals(fundamentals_fixture())
    assert out.columns == list(CURATED_FUNDAMENTAL_COLUMNS)
    assert set(FUNDAMENTAL_ITEMS) <= set(out.columns)
    got = out.select("period_end", "period_type", "revenue", "revenue_ttm", "net_income_ttm")
    expected = pl.DataFrame(
        {
            "period_end": [Q[0], Q[1], Q[2], Q[3], Q[3], *Q_AFTER_GAP],
            "period_type": ["Q", "Q", "Q", "A", "Q", "Q", "Q"],
            "revenue": [9.0, 11.0, 12.0, 46.0, 13.0, 15.0, 16.0],
            # 9 + 11 + 12 + 13 = 45 with the restated first quarter; annual row = its own value;
            # the quarters after the missing 2024Q1 are null
            "revenue_ttm": [None, None, None, 46.0, 45.0, None, None],
            # net income is missing for 2023Q2, so its trailing sum is unknown
            "net_income_ttm": [None, None, None, None, None, None, None],
        },
        schema_overrides={"revenue_ttm": pl.Float64, "net_income_ttm": pl.Float64},
    )
    assert_frame_equal(got, expected)
    assert out["total_assets"].to_list()[0] == 100.0


def test_available_at_is_report_date_when_known_else_period_end_plus_lag():
    out = curate_fundamentals(fundamentals_fixture(), quarter_lag_days=45, annual_lag_days=90)
    got = out.select("period_end", "period_type", "report_date", "available_at").rows()
    assert got[0] == (Q[0], "Q", date(2023, 5, 10), date(2023, 5, 10))  # max of item dates
    assert got[1] == (Q[1], "Q", None, date(2023, 8, 14))  # 2023-06-30 + 45 days
    assert got[3] == (Q[3], "A", None, date(2024, 3, 30))  # 2023-12-31 + 90 days
    shorter = curate_fundamentals(fundamentals_fixture(), quarter_lag_days=30)
    assert shorter["available_at"][1] == date(2023, 7, 30)


def test_fundamentals_as_of_ignores_vintages_ingested_later():
    before = fundamentals_as_of(fundamentals_fixture(), datetime(2024, 3, 1))
    first = before.row(0, named=True)
    # without the restatement: revenue 10, report date only from total_assets
    assert (first["revenue"], first["report_date"]) == (10.0, date(2023, 5, 5))
    assert before.filter(period_type="Q", period_end=Q[3])["revenue_ttm"].item() == 46.0


def test_curate_fundamentals_rejects_unknown_period_types():
    with pytest.raises(ValueError, match="period_type"):
        curate_fundamentals(fundamentals([("A", Q[0], "M", "revenue", 1.0, None, T0)]))


def test_latest_rows_keeps_the_latest_ingested_at_per_key():
    frame = pl.DataFrame({"k": ["a", "a", "b"], "v": [1, 2, 3], "ingested_at": [T1, T0, T0]})
    assert latest_rows(frame, ["k"]).rows() == [("a", 1, T1), ("b", 3, T0)]


def test_curate_securities_keeps_the_latest_profile_per_ticker():
    raw = conform(
        pl.DataFrame(
            {
                "ticker": ["A", "A", "B"],
                "sector": ["Energy", "Utilities", "Energy"],
                "source": ["demo"] * 3,
                "ingested_at": [T0, T1, T0],
            }
        ),
        RAW_SECURITIES,
    )
    assert curate_securities(raw).select("ticker", "sector").rows() == [
        ("A", "Utilities"),
        ("B", "Energy"),
    ]


def test_the_first_profile_with_shares_is_kept_beside_the_latest_one():
    """``first_shares_outstanding``: the earliest ingested profile's shares (a profile without
    shares skipped), what historical market caps fall back on; a refresh never moves it."""
    raw = conform(
        pl.DataFrame(
            {
                "ticker": ["A", "A", "A", "B", "C"],
                "shares_outstanding": [None, 100.0, 120.0, 50.0, None],
                "source": ["demo"] * 5,
                "ingested_at": [T0, T1, T1 + timedelta(days=7), T0, T0],
            }
        ),
        RAW_SECURITIES,
    )
    got = curate_securities(raw).select("ticker", "shares_outstanding", FIRST_SHARES)
    assert got.rows() == [("A", 120.0, 100.0), ("B", 50.0, 50.0), ("C", None, None)]
    # the same rows in another order give the same first profile
    assert curate_securities(raw.reverse()).select(got.columns).rows() == got.rows()


def test_curate_membership_and_actions_keep_latest_rows_sorted():
    members = conform(
        pl.DataFrame(
            {
                "universe": ["sp500"] * 2,
                "ticker": ["A", "A"],
                "start_date": [date(2020, 1, 1)] * 2,
                "end_date": [None, date(2021, 1, 1)],
                "source": ["demo", "files"],
                "ingested_at": [T0, T1],
            }
        ),
        RAW_MEMBERSHIP,
    )
    assert curate_membership(members).rows() == [("sp500", "A", date(2020, 1, 1), date(2021, 1, 1))]
    actions = conform(
        ACTIONS.with_columns(source=pl.lit("demo"), ingested_at=pl.lit(T0)), RAW_CORPORATE_ACTIONS
    )
    bad = actions.head(1).with_columns(date=pl.lit(date(2024, 1, 3)), value=pl.lit(0.0))
    out = curate_actions(pl.concat([actions, bad]))
    assert out.rows() == ACTIONS.rows()  # the zero-ratio split cannot adjust and is dropped
    with pytest.raises(ValueError, match="unknown action"):
        curate_actions(actions.with_columns(action=pl.lit("merger")))


def test_a_negative_share_count_becomes_null_and_keeps_the_rest_of_the_period():
    # The S&P 500 vendor file derives shares as net income / EPS: PRU 2012 came out negative.
    raw = fundamentals(
        [
            ("PRU", Q[3], "A", "shares_outstanding", 2.0e8, None, T0),  # older vintage
            ("PRU", Q[3], "A", "shares_outstanding", -1.08e9, None, T1),  # latest: impossible
            ("PRU", Q[3], "A", "revenue", 84.0, None, T1),
            ("MET", Q[3], "A", "shares_outstanding", 1.1e9, None, T0),
        ]
    )
    out = curate_fundamentals(raw).select("ticker", "revenue", "shares_outstanding")
    # the latest vintage says "unknown": the older value does not come back
    expected = pl.DataFrame(
        {"ticker": ["MET", "PRU"], "revenue": [None, 84.0], "shares_outstanding": [1.1e9, None]},
        schema_overrides={"revenue": pl.Float64, "shares_outstanding": pl.Float64},
    )
    assert_frame_equal(out, expected)
