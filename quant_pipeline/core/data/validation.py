"""pandera models of the curated tables, and :func:`validate` with readable failure messages.

The models are the contract of ``docs/design.md`` made executable: column types, nullability,
uniqueness of the table's key and the row rules a person would check by eye (positive closes,
high >= low, fundamentals not available before their period ends). Dagster assets can use the
models as types (dagster-pandera) or call :func:`validate` before writing.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.engines import polars_engine as pe

from quant_pipeline.core.data.frames import is_sorted_by
from quant_pipeline.core.data.schema import PERIOD_TYPES

_UTC = {"time_unit": "us", "time_zone": "UTC"}
_MAX_EXAMPLES = 5


class CuratedValidationError(ValueError):
    """A curated frame broke its table's model; the message lists every failing check."""


class CuratedPricesModel(pa.DataFrameModel):
    """curated.prices: one row per (ticker, date)."""

    ticker: str = pa.Field(nullable=False)
    date: pe.Date = pa.Field(nullable=False)
    open: float = pa.Field(nullable=True, gt=0)
    high: float = pa.Field(nullable=True, gt=0)
    low: float = pa.Field(nullable=True, gt=0)
    close: float = pa.Field(nullable=False, gt=0)
    adj_close: float = pa.Field(nullable=False, gt=0)
    volume: float = pa.Field(nullable=True, ge=0)
    daily_return: float = pa.Field(nullable=True, gt=-1)

    class Config:
        strict = True
        unique = ["ticker", "date"]

    @pa.dataframe_check(error="high >= low where both are present")
    def high_not_below_low(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("high") >= pl.col("low")).fill_null(True).alias("high_not_below_low")
        )


class CuratedFundamentalsModel(pa.DataFrameModel):
    """curated.fundamentals: one row per (ticker, period_end, period_type)."""

    ticker: str = pa.Field(nullable=False)
    period_end: pe.Date = pa.Field(nullable=False)
    period_type: str = pa.Field(nullable=False, isin=list(PERIOD_TYPES))
    report_date: pe.Date = pa.Field(nullable=True)
    available_at: pe.Date = pa.Field(nullable=False)
    ingested_at: pe.DateTime = pa.Field(nullable=False, dtype_kwargs=_UTC)
    revenue: float = pa.Field(nullable=True)
    gross_profit: float = pa.Field(nullable=True)
    operating_income: float = pa.Field(nullable=True)
    ebit: float = pa.Field(nullable=True)
    net_income: float = pa.Field(nullable=True)
    dividends_paid: float = pa.Field(nullable=True, ge=0)
    total_assets: float = pa.Field(nullable=True)
    total_equity: float = pa.Field(nullable=True)
    total_debt: float = pa.Field(nullable=True)
    cash: float = pa.Field(nullable=True)
    current_assets: float = pa.Field(nullable=True)
    current_liabilities: float = pa.Field(nullable=True)
    net_ppe: float = pa.Field(nullable=True)
    shares_outstanding: float = pa.Field(nullable=True, ge=0)
    short_term_debt: float = pa.Field(nullable=True)
    preferred_stock: float = pa.Field(nullable=True)
    minority_interest: float = pa.Field(nullable=True)
    revenue_ttm: float = pa.Field(nullable=True)
    gross_profit_ttm: float = pa.Field(nullable=True)
    operating_income_ttm: float = pa.Field(nullable=True)
    ebit_ttm: float = pa.Field(nullable=True)
    net_income_ttm: float = pa.Field(nullable=True)
    dividends_paid_ttm: float = pa.Field(nullable=True, ge=0)

    class Config:
        strict = True
        unique = ["ticker", "period_end", "period_type"]

    @pa.dataframe_check(error="available_at >= period_end")
    def available_after_period_end(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("available_at") >= pl.col("period_end")).alias("available_after_period_end")
        )


class CuratedSecuritiesModel(pa.DataFrameModel):
    """curated.securities: one row per ticker (latest profile)."""

    ticker: str = pa.Field(nullable=False, unique=True)
    name: str = pa.Field(nullable=True)
    sector: str = pa.Field(nullable=True)
    industry: str = pa.Field(nullable=True)
    exchange: str = pa.Field(nullable=True)
    country: str = pa.Field(nullable=True)
    quote_type: str = pa.Field(nullable=True)
    currency: str = pa.Field(nullable=True)
    shares_outstanding: float = pa.Field(nullable=True, ge=0)
    float_shares: float = pa.Field(nullable=True, ge=0)
    market_cap: float = pa.Field(nullable=True, ge=0)
    source: str = pa.Field(nullable=False)
    ingested_at: pe.DateTime = pa.Field(nullable=False, dtype_kwargs=_UTC)
    first_shares_outstanding: float = pa.Field(nullable=True, ge=0)

    class Config:
        strict = True


class CuratedMembershipModel(pa.DataFrameModel):
    """curated.membership: one row per (universe, ticker, start_date); end_date null = still in."""

    universe: str = pa.Field(nullable=False)
    ticker: str = pa.Field(nullable=False)
    start_date: pe.Date = pa.Field(nullable=False)
    end_date: pe.Date = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["universe", "ticker", "start_date"]

    @pa.dataframe_check(error="end_date >= start_date where end_date is present")
    def end_not_before_start(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("end_date") >= pl.col("start_date")).fill_null(True).alias("end_ok")
        )


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "curated.prices": CuratedPricesModel,
    "curated.fundamentals": CuratedFundamentalsModel,
    "curated.securities": CuratedSecuritiesModel,
    "curated.membership": CuratedMembershipModel,
}

# Columns that identify a row in an error message, per table.
_ROW_KEYS: dict[str, tuple[str, ...]] = {
    "curated.prices": ("ticker", "date"),
    "curated.fundamentals": ("ticker", "period_end", "period_type"),
    "curated.securities": ("ticker",),
    "curated.membership": ("universe", "ticker", "start_date"),
}


def _key_proven(model: type[pa.DataFrameModel]) -> type[pa.DataFrameModel]:
    """``model`` without its multi-column ``unique`` rule, for frames whose key order proves it.

    pandera checks ``unique`` by hashing every key (4-5 s and +1 GB on 15M price rows, 90% of the
    validation); a frame in strictly increasing key order cannot hold a duplicate, and checking
    that order is O(n) without hashing. Same name, so failure messages read the same."""
    config = type("Config", (), {"strict": True, "unique": None})
    return type(model.__name__, (model,), {"Config": config, "__doc__": model.__doc__})


_KEY_PROVEN: dict[str, type[pa.DataFrameModel]] = {
    name: _key_proven(model) for name, model in MODELS.items() if model.__config__.unique
}


def validate(frame: pl.DataFrame, table_name: str) -> pl.DataFrame:
    """Check ``frame`` against the model of ``table_name`` (e.g. ``"curated.prices"``).

    Every check runs (lazy validation) before anything is reported. Returns the frame unchanged
    when it passes; otherwise raises :class:`CuratedValidationError` naming the table, each
    failing column and check with its number of failing rows and up to five example rows.
    """
    if table_name not in MODELS:
        raise KeyError(f"no validation model for {table_name!r}; known: {sorted(MODELS)}")
    model = MODELS[table_name]
    key = list(model.__config__.unique or [])
    if (
        table_name in _KEY_PROVEN
        and isinstance(frame, pl.DataFrame)
        and all(c in frame.columns for c in key)
        and is_sorted_by(frame, key)
    ):
        model = _KEY_PROVEN[table_name]
    try:
        return model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise CuratedValidationError(_describe(frame, table_name, exc.failure_cases)) from None


def _describe(frame: pl.DataFrame, table_name: str, failures: pl.DataFrame) -> str:
    model_name = MODELS[table_name].__name__
    keys = [c for c in _ROW_KEYS[table_name] if c in frame.columns]
    groups = failures.group_by(["column", "check"], maintain_order=True).agg(
        pl.col("index").drop_nulls().unique().sort().alias("rows"),
        pl.col("failure_case").alias("cases"),
    )
    lines = [f"{table_name} failed validation ({frame.height} rows checked):"]
    for column, check, rows, cases in groups.iter_rows():
        where = "table-level check" if column == model_name else f"column {column!r} check"
        if rows:
            # a column check shows the row's key and the value; a table check the whole row
            shown = list(dict.fromkeys([*keys, column])) if column in frame.columns else None
            examples = frame[rows[:_MAX_EXAMPLES]].select(shown or frame.columns).to_dicts()
            lines.append(f"- {where} {check!r} failed on {len(rows)} rows, e.g.")
            lines += [
                "    " + ", ".join(f"{k}={v}" for k, v in example.items()) for example in examples
            ]
        else:
            lines.append(f"- {where} {check!r} failed: {'; '.join(cases[:_MAX_EXAMPLES])}")
    return "\n".join(lines)
