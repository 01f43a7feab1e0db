"""Orders assets: the recommendation packet of a portfolio (warehouse rows + outbox files).

One run builds the orders of one portfolio (run config below; the inbox sensor and the UI
launchpad), or of every portfolio in ``portfolios.yaml`` (``all_portfolios: true``; the
quarterly schedule). The computation is :func:`quant_pipeline.app.recommendation.prepare_packet`,
the same one ``quant-pipeline orders`` calls, so the UI and the CLI give the same table.
"""

from datetime import date

import dagster as dg
import polars as pl
from pydantic import Field

from quant_pipeline.app.packets import packet_paths, write_packet
from quant_pipeline.app.recommendation import (
    Packet,
    file_sha256,
    market_today,
    prepare_packet,
)
from quant_pipeline.core.accounts.holdings import HoldingsError
from quant_pipeline.core.accounts.orders import OrdersError
from quant_pipeline.core.accounts.portfolios import (
    PortfoliosConfigError,
    PortfolioSpec,
    load_portfolios,
    portfolio_name,
)
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.settings import outbox_dir, portfolios_file

GROUP = "orders"
KINDS = {"duckdb", "polars"}
ORDERS_OP = "orders_packets"
UPSTREAM = [["portfolio", "target_weights"], ["curated", "prices"], ["curated", "securities"]]


class OrdersConfig(dg.Config):
    """Which portfolio to build orders for; unset fields come from ``portfolios.yaml``."""

    portfolio: str = Field(
        default="default",
        description="Portfolio name: one from portfolios.yaml, or any name for an ad-hoc run.",
    )
    strategy: str | None = Field(
        default=None, description="Strategy name (default: portfolios.yaml, else the first one)."
    )
    capital: float | None = Field(default=None, description="New money to invest, in dollars.")
    holdings_file: str | None = Field(
        default=None, description="Path of a holdings CSV (ticker, shares[, amount_invested])."
    )
    cash: float | None = Field(default=None, description="Cash already in the account.")
    fractional: bool | None = Field(default=None, description="Allow fractional shares.")
    min_trade_value: float | None = Field(
        default=None, description="Skip trades worth less than this many dollars."
    )
    sell_unlisted: bool | None = Field(
        default=None, description="Sell holdings outside the strategy (false: keep them)."
    )
    commission: bool | None = Field(
        default=None, description="Charge Interactive Brokers fixed commissions (false: none)."
    )
    max_price_age_days: int | None = Field(
        default=None, description="Refuse orders when prices are older than this (business days)."
    )
    as_of: str | None = Field(
        default=None, description="As-of date YYYY-MM-DD (default: today in New York)."
    )
    all_portfolios: bool = Field(
        default=False, description="Build every portfolio of portfolios.yaml (quarterly run)."
    )
    outbox: str | None = Field(
        default=None, description="Packet folder (default: QUANT_PIPELINE_OUTBOX or outbox/)."
    )
    holdings_sha256: str | None = Field(
        default=None, description="Content hash the inbox sensor saw (checked, for the record)."
    )


def resolve_specs(config: OrdersConfig) -> list[PortfolioSpec]:
    """The portfolio(s) of a run: ``portfolios.yaml`` entries with the run config on top."""
    try:
        portfolios = load_portfolios(portfolios_file())
    except PortfoliosConfigError as exc:
        raise dg.Failure(description=str(exc)) from exc
    if config.all_portfolios:
        if not portfolios.portfolios:
            raise dg.Failure(
                description=f"all_portfolios: no portfolios listed in {portfolios_file()}"
            )
        return list(portfolios.portfolios.values())
    spec = portfolios.get(portfolio_name(config.portfolio))
    return [
        spec.with_overrides(
            strategy=config.strategy,
            capital=config.capital,
            holdings=config.holdings_file,
            cash=config.cash,
            fractional=config.fractional,
            min_trade_value=config.min_trade_value,
            sell_unlisted=config.sell_unlisted,
            commission=config.commission,
            max_price_age_days=config.max_price_age_days,
        )
    ]


def _as_of(config: OrdersConfig) -> date:
    if config.as_of is None:
        return market_today()
    try:
        return date.fromisoformat(config.as_of)
    except ValueError as exc:
        raise dg.Failure(description=f"as_of {config.as_of!r} is not a date (YYYY-MM-DD)") from exc


def _failure(name: str, exc: Exception) -> dg.Failure:
    metadata: dict[str, object] = {"portfolio": name, "error": type(exc).__name__}
    if isinstance(exc, HoldingsError):
        problems = pl.DataFrame(
            {
                "line": [p.line for p in exc.problems],
                "column": [p.column for p in exc.problems],
                "value": [p.value for p in exc.problems],
                "rule": [p.rule for p in exc.problems],
            }
        )
        metadata["holdings_file"] = exc.name
        metadata["bad_rows"] = dg.MetadataValue.md(markdown_table(problems, max_rows=500))
    return dg.Failure(description=f"portfolio {name}: {exc}", metadata=metadata)


def write_packet_everywhere(packet: Packet, outbox, warehouse) -> dict[str, str]:
    """Packet files, then ``orders.orders`` / ``orders.packets`` / ``orders.live_holdings``."""
    paths = packet_paths(outbox, packet.spec.name, packet.as_of)
    files = {"csv": str(paths.csv), "json": str(paths.json)}
    write_packet(
        outbox, packet.spec.name, packet.as_of, packet.table, packet.manifest, packet.summary()
    )
    key = [packet.packet_id]
    warehouse.replace_partition("orders.orders", packet.order_rows(), "packet_id", key)
    warehouse.replace_partition("orders.packets", packet.packet_row(files), "packet_id", key)
    held = packet.holdings_rows()
    if held is not None:
        warehouse.replace_partition("orders.live_holdings", held, "portfolio", [packet.spec.name])
    return files


@dg.multi_asset(
    name=ORDERS_OP,
    specs=[
        dg.AssetSpec(
            ["orders", "orders"],
            deps=UPSTREAM,
            description="Share orders per portfolio, strategy, as-of date and ticker.",
            group_name=GROUP,
            kinds=KINDS,
        ),
        dg.AssetSpec(
            ["orders", "packets"],
            deps=UPSTREAM,
            description="One manifest row per recommendation packet written to the outbox.",
            group_name=GROUP,
            kinds=KINDS,
        ),
        dg.AssetSpec(
            ["orders", "live_holdings"],
            deps=UPSTREAM,
            description="The latest holdings file processed per portfolio (the live portfolio).",
            group_name=GROUP,
            kinds=KINDS,
        ),
    ],
    pool="warehouse",
)
def orders_packets(
    context: dg.AssetExecutionContext,
    config: OrdersConfig,
    market: MarketDataResource,
    warehouse: WarehouseResource,
):
    """Orders for a portfolio from its strategy's latest weights, written as a packet."""
    specs = resolve_specs(config)
    as_of = _as_of(config)
    outbox = config.outbox or str(outbox_dir())
    wh = warehouse.get()
    source = market.settings().source
    packets: list[Packet] = []
    failures: list[dg.Failure] = []
    for spec in specs:
        try:
            packets.append(prepare_packet(wh, spec, as_of=as_of, data_source=source))
        except (HoldingsError, OrdersError, ValueError) as exc:
            context.log.error(f"portfolio {spec.name}: {exc}")
            failures.append(_failure(spec.name, exc))
    if failures and len(specs) == 1:
        raise failures[0]  # nothing written
    if config.holdings_sha256 and config.holdings_file and packets:
        seen = file_sha256(config.holdings_file)
        if seen != config.holdings_sha256:
            context.log.warning(
                f"{config.holdings_file} changed since the sensor saw it; orders use the current "
                "content (a new run follows for it)"
            )

    written = {}
    for packet in packets:
        written[packet.spec.name] = write_packet_everywhere(packet, outbox, wh)
        context.log.info(
            f"packet {packet.packet_id}: {packet.table.height} orders, "
            f"cash left {packet.result.cash_after:,.2f}; {written[packet.spec.name]}"
        )
    if failures:
        raise dg.Failure(
            description=(
                f"packets written for {sorted(written)}; failed for "
                f"{len(failures)} portfolio(s):\n" + "\n".join(f.description for f in failures)
            )
        )

    orders = pl.concat([p.order_rows() for p in packets], how="vertical_relaxed")
    manifests = {p.spec.name: {**p.manifest, "files": written[p.spec.name]} for p in packets}
    summary = {p.spec.name: p.summary() for p in packets}
    yield dg.MaterializeResult(
        asset_key=["orders", "orders"],
        metadata=table_metadata(
            "orders.orders",
            orders,
            as_of=str(as_of),
            portfolios=dg.MetadataValue.json(sorted(written)),
            orders_table=dg.MetadataValue.md(markdown_table(orders.drop("packet_id"), 100)),
            summary=dg.MetadataValue.json(summary),
            cash_left=dg.MetadataValue.json(
                {p.spec.name: round(p.result.cash_after, 2) for p in packets}
            ),
        ),
    )
    rows = pl.concat([p.packet_row(written[p.spec.name]) for p in packets])
    yield dg.MaterializeResult(
        asset_key=["orders", "packets"],
        metadata=table_metadata(
            "orders.packets",
            rows.drop("manifest"),
            files=dg.MetadataValue.json(written),
            manifest=dg.MetadataValue.json(manifests),
        ),
    )
    held = [h for p in packets if (h := p.holdings_rows()) is not None]
    yield dg.MaterializeResult(
        asset_key=["orders", "live_holdings"],
        metadata={
            "portfolios_updated": dg.MetadataValue.json(
                sorted(p.spec.name for p in packets if p.holdings is not None)
            ),
            "rows_written": sum(h.height for h in held),
        },
    )


orders_job = dg.define_asset_job(
    "orders_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Orders packet for one portfolio (run config), then the live-portfolio health.",
)

quarterly_rebalance_job = dg.define_asset_job(
    "quarterly_rebalance_job",
    selection=dg.AssetSelection.all(),
    description=(
        "Refresh the data, rebuild factors and target weights, then write the orders packet of "
        "every portfolio in portfolios.yaml."
    ),
)

orders_assets = [orders_packets]
