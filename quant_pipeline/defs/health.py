"""Live-portfolio health: value history and weights of what each portfolio holds, and checks.

The live portfolio of a portfolio is its latest processed holdings file (``orders.live_holdings``,
written by the orders asset). ``orders.holdings_value`` marks those positions to market over the
last ``lookback_days`` trading days; ``orders.live_positions`` holds each position's value,
sector and weight at the latest close. Three asset checks compare them with the limits of
``portfolios.yaml`` (``health:``; defaults 20% drawdown, 40% per sector, 25% per position) and
fail with the numbers that broke the rule.
"""

import dagster as dg
import polars as pl

from quant_pipeline.config.portfolios import load_portfolios
from quant_pipeline.core.accounts import health
from quant_pipeline.core.accounts.portfolios import PortfoliosConfig
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import WarehouseResource
from quant_pipeline.defs.tables import TableReader, reads, table_spec
from quant_pipeline.settings import portfolios_file

GROUP = "orders"
KINDS = {"duckdb", "polars"}
LIVE_HOLDINGS = "orders.live_holdings"
LIMIT_SCHEMA = {
    "portfolio": pl.String,
    "max_drawdown": pl.Float64,
    "max_sector_weight": pl.Float64,
    "max_position_weight": pl.Float64,
    "lookback_days": pl.Int64,
}
HEALTH_READS = reads(LIVE_HOLDINGS, "curated.prices", "curated.securities")
DRAWDOWN_READS = reads("orders.holdings_value")
POSITIONS_READS = reads("orders.live_positions")


def health_limits(portfolios: list[str], config: PortfoliosConfig | None = None) -> pl.DataFrame:
    """One row of limits per portfolio (``portfolios.yaml`` entry, else its defaults)."""
    config = config or load_portfolios(portfolios_file())
    rows = []
    for name in portfolios:
        h = config.get(name).health
        rows.append(
            (name, h.max_drawdown, h.max_sector_weight, h.max_position_weight, h.lookback_days)
        )
    return pl.DataFrame(rows, schema=LIMIT_SCHEMA, orient="row")


def _live_holdings(read: TableReader) -> pl.DataFrame:
    if not read.has_table(LIVE_HOLDINGS):
        return pl.DataFrame(
            schema={"portfolio": pl.String, "ticker": pl.String, "shares": pl.Float64}
        )
    return read(LIVE_HOLDINGS, columns=["portfolio", "ticker", "shares"])


def live_health(read: TableReader) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(holdings_value, live_positions) from the tables of ``HEALTH_READS``."""
    holdings = _live_holdings(read)
    tickers = sorted(holdings["ticker"].unique().to_list())
    prices = (
        read(
            "curated.prices",
            columns=["ticker", "date", "close", "adj_close"],
            filters={"ticker": tickers},
        )
        if tickers
        else pl.DataFrame(
            schema={
                "ticker": pl.String,
                "date": pl.Date,
                "close": pl.Float64,
                "adj_close": pl.Float64,
            }
        )
    )
    limits = health_limits(sorted(holdings["portfolio"].unique().to_list()))
    values = [
        health.mark_to_market(
            holdings.join(group.select("portfolio"), on="portfolio", how="semi"),
            prices,
            lookback_days=int(lookback),
        )
        for (lookback,), group in limits.group_by("lookback_days")
    ]
    value = (
        pl.concat(values).sort("portfolio", "date")
        if values
        else pl.DataFrame(schema=health.VALUE_SCHEMA)
    )
    latest = (
        prices.filter(pl.col("close").is_not_null())
        .sort("ticker", "date")
        .group_by("ticker", maintain_order=True)
        .last()
        .select("ticker", pl.col("close").alias("price"), pl.col("date").alias("price_date"))
    )
    sectors = (
        read("curated.securities", columns=["ticker", "sector"])
        if tickers
        else pl.DataFrame(schema={"ticker": pl.String, "sector": pl.String})
    )
    return value, health.position_weights(holdings, latest, sectors)


@dg.multi_asset(
    name="live_portfolio_health",
    specs=[
        table_spec(
            "orders.holdings_value",
            "Daily value, peak and drawdown of each portfolio's current holdings.",
            GROUP,
            HEALTH_READS.deps,
        ),
        table_spec(
            "orders.live_positions",
            "Each live position's latest value, sector and weight in its portfolio.",
            GROUP,
            HEALTH_READS.deps,
        ),
    ],
    pool="warehouse",
)
def live_portfolio_health(warehouse: WarehouseResource):
    """Value history and position weights of the live portfolios (latest holdings files)."""
    value, positions = live_health(HEALTH_READS.reader(warehouse.read_only()))
    wh = warehouse.get()
    wh.replace_table("orders.holdings_value", value)
    wh.replace_table("orders.live_positions", positions)
    latest = value.sort("portfolio", "date").group_by("portfolio", maintain_order=True).last()
    yield dg.MaterializeResult(
        asset_key=["orders", "holdings_value"],
        metadata=table_metadata(
            "orders.holdings_value",
            value,
            latest=dg.MetadataValue.md(markdown_table(latest, max_rows=50)),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["orders", "live_positions"],
        metadata=table_metadata("orders.live_positions", positions),
    )


def _read(read: TableReader, table: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return read(table) if read.has_table(table) else pl.DataFrame(schema=schema)


def _result(breaches: pl.DataFrame, checked: list[str], rule: str, **extra) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=breaches.is_empty(),
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{rule}: {breaches.height} breach(es)" if breaches.height else f"{rule}: all within"
        ),
        metadata={
            "portfolios_checked": dg.MetadataValue.json(checked),
            "breaches": breaches.height,
            "breach_details": dg.MetadataValue.json(
                [
                    {
                        k: (str(v) if not isinstance(v, float | int | None) else v)
                        for k, v in r.items()
                    }
                    for r in breaches.to_dicts()
                ]
            ),
            "breach_table": dg.MetadataValue.md(markdown_table(breaches, max_rows=100)),
            **extra,
        },
    )


@dg.asset_check(
    asset=["orders", "holdings_value"],
    name="drawdown_within_limit",
    description="Each live portfolio is no further below its peak than health.max_drawdown.",
)
def drawdown_within_limit(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    read = DRAWDOWN_READS.reader(warehouse.read_only())
    value = _read(read, "orders.holdings_value", health.VALUE_SCHEMA)
    names = sorted(value["portfolio"].unique().to_list())
    breaches = health.drawdown_breaches(value, health_limits(names))
    current = value.sort("portfolio", "date").group_by("portfolio", maintain_order=True).last()
    return _result(
        breaches,
        names,
        "drawdown from peak over the limit",
        current_drawdown=dg.MetadataValue.json(
            dict(zip(current["portfolio"], current["drawdown"], strict=True))
        ),
    )


@dg.asset_check(
    asset=["orders", "live_positions"],
    name="sector_weight_within_cap",
    description="No sector is more of a live portfolio than health.max_sector_weight.",
)
def sector_weight_within_cap(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    read = POSITIONS_READS.reader(warehouse.read_only())
    positions = _read(read, "orders.live_positions", health.POSITION_SCHEMA)
    names = sorted(positions["portfolio"].unique().to_list())
    breaches = health.sector_breaches(positions, health_limits(names))
    top = health.sector_weights(positions).group_by("portfolio", maintain_order=True).first()
    return _result(
        breaches,
        names,
        "sector weight over the cap",
        largest_sector=dg.MetadataValue.json(
            {
                p: {"sector": s, "weight": w}
                for p, s, w in top.select("portfolio", "sector", "weight").iter_rows()
            }
        ),
    )


@dg.asset_check(
    asset=["orders", "live_positions"],
    name="position_weight_within_cap",
    description="No single position is more of a live portfolio than health.max_position_weight.",
)
def position_weight_within_cap(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    read = POSITIONS_READS.reader(warehouse.read_only())
    positions = _read(read, "orders.live_positions", health.POSITION_SCHEMA)
    names = sorted(positions["portfolio"].unique().to_list())
    breaches = health.position_breaches(positions, health_limits(names))
    top = (
        positions.sort("portfolio", "weight", descending=[False, True])
        .group_by("portfolio", maintain_order=True)
        .first()
    )
    return _result(
        breaches,
        names,
        "position weight over the cap",
        largest_position=dg.MetadataValue.json(
            {
                p: {"ticker": t, "weight": w}
                for p, t, w in top.select("portfolio", "ticker", "weight").iter_rows()
            }
        ),
    )


health_assets = [live_portfolio_health]
health_checks = [drawdown_within_limit, sector_weight_within_cap, position_weight_within_cap]
