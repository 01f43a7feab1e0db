"""Column contracts shared by every layer: the raw schemas sources return, canonical names.

Pure constants (polars dtypes only). The warehouse creates its raw tables from these, sources
conform their frames to them with :func:`conform`, and the curated layer reads them.
"""

from __future__ import annotations

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")

SECTORS: tuple[str, ...] = (
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
)

# Canonical fundamental items. Flow items cover a period (summed into trailing twelve months);
# stock items are balances at period end (the latest value is used).
FLOW_ITEMS: tuple[str, ...] = (
    "revenue",
    "gross_profit",
    "operating_income",
    "ebit",
    "net_income",
    # Cash dividends paid to shareholders in the period, as an amount paid (>= 0). Cash-flow
    # statements print it negative (an outflow); raw rows keep the source's sign and curation
    # drops it (core.data.curation.DIVIDENDS_PAID). Null where a source has no such line.
    "dividends_paid",
)
STOCK_ITEMS: tuple[str, ...] = (
    "total_assets",
    "total_equity",
    "total_debt",
    "cash",
    "current_assets",
    "current_liabilities",
    "net_ppe",
    "shares_outstanding",
    # Greenblatt's enterprise value and capital (core.factors.values): null where a source has
    # no such line (a missing line is usually a zero the vendor did not print).
    "short_term_debt",
    "preferred_stock",
    "minority_interest",
)
FUNDAMENTAL_ITEMS: tuple[str, ...] = FLOW_ITEMS + STOCK_ITEMS

PERIOD_TYPES: tuple[str, ...] = ("Q", "A")  # quarter, fiscal year
# split: value = new shares per old share; dividend: cash per share; spinoff: value per share of
# what was distributed (shares of the spun-off company x their first close); stock_dividend: new
# shares distributed per share held (DISCA's 2014 DISCK dividend: 1.0).
ACTION_TYPES: tuple[str, ...] = ("split", "dividend", "spinoff", "stock_dividend")

# The price columns, the one list of them in the package (quant_pipeline_tests/test_one_home.py
# rejects a second). A price bar is (ticker, date) plus PRICE_VALUE_COLUMNS; OHLC_COLUMNS are the
# as-traded prices a split rescales.
OHLC_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
PRICE_VALUE_COLUMNS: tuple[str, ...] = (*OHLC_COLUMNS, "adj_close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("ticker", "date", *PRICE_VALUE_COLUMNS)
# curated.prices: a price bar plus the adjusted daily return, sorted by ticker, date.
CURATED_PRICE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "daily_return")
# curated.prices without the intraday fields (open, high, low), which factors, backtests and the
# integrity checks never read: leaving them out keeps reads of a large market small.
CLOSE_PRICE_COLUMNS: tuple[str, ...] = tuple(
    c for c in CURATED_PRICE_COLUMNS if c not in ("open", "high", "low")
)

# raw.prices: one row per (ticker, date, source). close is as traded; adj_close is adjusted for
# splits and dividends (null when the source does not provide it).
RAW_PRICES: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "date": pl.Date,
    **dict.fromkeys(PRICE_VALUE_COLUMNS, pl.Float64),
    "source": pl.String,
    "ingested_at": UTC_TS,
}

# raw.corporate_actions: one row per (ticker, date, action, source). value is the split ratio
# (new shares per old share, 4.0 for a 4:1 split), the cash dividend per share, the value per
# share distributed in a spin-off, or the new shares per share of a stock dividend.
RAW_CORPORATE_ACTIONS: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "date": pl.Date,
    "action": pl.String,
    "value": pl.Float64,
    "source": pl.String,
    "ingested_at": UTC_TS,
}

# raw.fundamentals: long format, one row per (ticker, period_end, period_type, item, source,
# ingested_at). report_date is the filing / earnings date when the source knows it, else null.
RAW_FUNDAMENTALS: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "period_end": pl.Date,
    "period_type": pl.String,
    "item": pl.String,
    "value": pl.Float64,
    "report_date": pl.Date,
    "source": pl.String,
    "ingested_at": UTC_TS,
}

# raw.securities: one row per (ticker, source, ingested_at): the profile as fetched.
RAW_SECURITIES: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "name": pl.String,
    "sector": pl.String,
    "industry": pl.String,
    "exchange": pl.String,
    "country": pl.String,
    "quote_type": pl.String,
    "currency": pl.String,
    "shares_outstanding": pl.Float64,
    # shares available to trade (outstanding minus insiders' and strategic holders'), when the
    # source gives them (Yahoo's floatShares; an optional column of the files source)
    "float_shares": pl.Float64,
    "market_cap": pl.Float64,
    "source": pl.String,
    "ingested_at": UTC_TS,
}

# raw.membership: one row per (universe, ticker, start_date, source). end_date null = still in.
RAW_MEMBERSHIP: dict[str, pl.DataType] = {
    "universe": pl.String,
    "ticker": pl.String,
    "start_date": pl.Date,
    "end_date": pl.Date,
    "source": pl.String,
    "ingested_at": UTC_TS,
}

# raw.ingest_log: one row per fetch attempt of a dataset for a ticker (ticker null for a
# whole-dataset row). status is 'ok', 'empty', 'error' (a failed fetch; a crashed step: 'step
# crashed: <Type>: ...'; a failed write: 'write to raw.<dataset> failed: ...') or 'refused'
# (incoming price rows kept out because they would make valid stored rows worse).
RAW_INGEST_LOG: dict[str, pl.DataType] = {
    "run_id": pl.String,
    "dataset": pl.String,
    "ticker": pl.String,
    "rows": pl.Int64,
    "status": pl.String,
    "error": pl.String,
    "attempts": pl.Int64,
    "started_at": UTC_TS,
    "finished_at": UTC_TS,
}

RAW_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "prices": RAW_PRICES,
    "corporate_actions": RAW_CORPORATE_ACTIONS,
    "fundamentals": RAW_FUNDAMENTALS,
    "securities": RAW_SECURITIES,
    "membership": RAW_MEMBERSHIP,
}

# Natural keys of the raw tables (ingested_at excluded: a re-fetch of the same key replaces
# prices and actions, while fundamentals and profiles keep one row per changed vintage).
RAW_KEYS: dict[str, tuple[str, ...]] = {
    "prices": ("ticker", "date", "source"),
    "corporate_actions": ("ticker", "date", "action", "source"),
    "fundamentals": ("ticker", "period_end", "period_type", "item", "source"),
    "securities": ("ticker", "source"),
    "membership": ("universe", "ticker", "start_date", "source"),
}


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Return ``frame`` with exactly the columns of ``schema``, in order, cast to its dtypes.

    Missing columns are added as nulls; extra columns are dropped. Casting is strict, so a value
    that cannot be represented (text in a numeric column) raises instead of turning into null.
    """
    exprs = []
    for name, dtype in schema.items():
        if name in frame.columns:
            exprs.append(pl.col(name).cast(dtype, strict=True))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(exprs)


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with the given schema."""
    return pl.DataFrame(schema=schema)


# curated.securities: the shares of the first profile on file, what historical market caps fall
# back on when no reported shares are known (core.data.curation.curate_securities)
FIRST_SHARES = "first_shares_outstanding"
