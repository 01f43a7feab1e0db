"""Health of a live portfolio: its value history, drawdown, sector and position weights.

Pure: polars in, polars out. A *live portfolio* is what a person holds now: the latest holdings
file processed for that portfolio (``orders.live_holdings``). Its history is the current
positions marked to market back in time (what today's holdings were worth on each of the last
``lookback_days`` trading days), so the drawdown answers "how far below its recent peak is what I
hold now". Only prices up to the latest price date are looked at; nothing looks forward.

Value of ticker *i* on day *t*: ``shares_i * close_i(L) * adj_close_i(t) / adj_close_i(L)``,
``L`` its latest price date: the total-return path of the position, equal to shares x close on
``L`` (so the latest value is the market value a person sees). A missing day carries the last
price forward; the series starts on the first day every position has a price.
"""

from __future__ import annotations

import polars as pl

from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR

VALUE_SCHEMA: dict[str, pl.DataType] = {
    "portfolio": pl.String,
    "date": pl.Date,
    "value": pl.Float64,
    "peak": pl.Float64,
    "drawdown": pl.Float64,
}

POSITION_SCHEMA: dict[str, pl.DataType] = {
    "portfolio": pl.String,
    "ticker": pl.String,
    "sector": pl.String,
    "shares": pl.Float64,
    "price": pl.Float64,
    "price_date": pl.Date,
    "value": pl.Float64,
    "weight": pl.Float64,
}


def mark_to_market(
    holdings: pl.DataFrame, prices: pl.DataFrame, lookback_days: int = TRADING_DAYS_PER_YEAR
) -> pl.DataFrame:
    """Daily value of each portfolio's current holdings (schema :data:`VALUE_SCHEMA`).

    ``holdings``: portfolio, ticker, shares. ``prices``: ticker, date, close, adj_close
    (curated.prices). Per portfolio, the last ``lookback_days`` dates on which any of its tickers
    has a price; ``peak`` is the running maximum of ``value`` inside that window and
    ``drawdown = value / peak - 1`` (0 at a peak, negative below it). Positions with 0 shares
    are ignored; a portfolio with no priced position gives no rows.
    """
    out = []
    held = holdings.filter(pl.col("shares") > 0)
    for portfolio in held["portfolio"].unique().sort():
        mine = held.filter(pl.col("portfolio") == portfolio).select("ticker", "shares")
        px = (
            prices.join(mine, on="ticker", how="inner")
            .filter(pl.col("close").is_not_null() & pl.col("adj_close").is_not_null())
            .sort("ticker", "date")
        )
        if px.is_empty():
            continue
        px = px.with_columns(
            (
                pl.col("shares")
                * pl.col("close").last().over("ticker")
                * pl.col("adj_close")
                / pl.col("adj_close").last().over("ticker")
            ).alias("value")
        )
        days = px.select(pl.col("date").unique().sort().tail(lookback_days))
        grid = (
            days.join(mine.select("ticker"), how="cross")
            .join(px.select("ticker", "date", "value"), on=["ticker", "date"], how="left")
            .sort("ticker", "date")
            .with_columns(pl.col("value").forward_fill().over("ticker"))
        )
        # Start when every position is priced: the value must not jump when a history begins.
        daily = (
            grid.group_by("date")
            .agg(pl.col("value").sum(), pl.col("value").null_count().alias("missing"))
            .filter(pl.col("missing") == 0)
            .sort("date")
            .select(
                pl.lit(portfolio).alias("portfolio"),
                "date",
                "value",
                pl.col("value").cum_max().alias("peak"),
            )
            .with_columns((pl.col("value") / pl.col("peak") - 1.0).alias("drawdown"))
        )
        out.append(daily)
    if not out:
        return pl.DataFrame(schema=VALUE_SCHEMA)
    return pl.concat(out).cast(VALUE_SCHEMA)  # type: ignore[arg-type]


def position_weights(
    holdings: pl.DataFrame, latest: pl.DataFrame, sectors: pl.DataFrame
) -> pl.DataFrame:
    """Each position's market value and weight in its portfolio (schema :data:`POSITION_SCHEMA`).

    ``holdings``: portfolio, ticker, shares. ``latest``: ticker, price, price_date (latest close).
    ``sectors``: ticker, sector (``Unknown`` when absent). ``weight = value / sum(value)`` over
    the portfolio's positions (cash is not part of the holdings file, so it is left out: a
    weight is a share of the invested value). Zero-share and unpriced rows are dropped.
    """
    frame = (
        holdings.filter(pl.col("shares") > 0)
        .select("portfolio", "ticker", pl.col("shares").cast(pl.Float64))
        .join(latest.select("ticker", "price", "price_date"), on="ticker", how="inner")
        .join(sectors.select("ticker", "sector"), on="ticker", how="left")
        .with_columns(
            pl.col("sector").fill_null("Unknown"),
            (pl.col("shares") * pl.col("price")).alias("value"),
        )
        .with_columns((pl.col("value") / pl.col("value").sum().over("portfolio")).alias("weight"))
        .sort("portfolio", "ticker")
    )
    return frame.select(list(POSITION_SCHEMA)).cast(POSITION_SCHEMA)  # type: ignore[arg-type]


def drawdown_breaches(values: pl.DataFrame, limits: pl.DataFrame) -> pl.DataFrame:
    """Portfolios whose latest drawdown is deeper than ``max_drawdown`` (a positive fraction).

    ``values``: :data:`VALUE_SCHEMA`. ``limits``: portfolio, max_drawdown. Columns out:
    portfolio, date, value, peak, drawdown, max_drawdown (one row per breaking portfolio).
    """
    latest = values.sort("portfolio", "date").group_by("portfolio", maintain_order=True).last()
    return (
        latest.join(limits.select("portfolio", "max_drawdown"), on="portfolio", how="inner")
        .filter(-pl.col("drawdown") > pl.col("max_drawdown") + 1e-12)
        .select("portfolio", "date", "value", "peak", "drawdown", "max_drawdown")
        .sort("portfolio")
    )


def sector_weights(positions: pl.DataFrame) -> pl.DataFrame:
    """portfolio, sector, weight (sum of position weights), tickers (comma-separated)."""
    return (
        positions.group_by("portfolio", "sector")
        .agg(
            pl.col("weight").sum(),
            pl.col("ticker").sort().str.join(", ").alias("tickers"),
        )
        .sort("portfolio", "weight", "sector", descending=[False, True, False])
    )


def sector_breaches(positions: pl.DataFrame, limits: pl.DataFrame) -> pl.DataFrame:
    """Sectors above ``max_sector_weight``: portfolio, sector, weight, cap, tickers."""
    return (
        sector_weights(positions)
        .join(limits.select("portfolio", "max_sector_weight"), on="portfolio", how="inner")
        .filter(pl.col("weight") > pl.col("max_sector_weight") + 1e-12)
        .select("portfolio", "sector", "weight", "max_sector_weight", "tickers")
    )


def position_breaches(positions: pl.DataFrame, limits: pl.DataFrame) -> pl.DataFrame:
    """Positions above ``max_position_weight``: portfolio, ticker, sector, value, weight, cap."""
    return (
        positions.join(
            limits.select("portfolio", "max_position_weight"), on="portfolio", how="inner"
        )
        .filter(pl.col("weight") > pl.col("max_position_weight") + 1e-12)
        .select("portfolio", "ticker", "sector", "value", "weight", "max_position_weight")
        .sort("portfolio", "weight", "ticker", descending=[False, True, False])
    )
