"""Orders assets: the recommendation packet of a portfolio (warehouse rows + outbox files).

One run builds the orders of one portfolio (run config below; the inbox sensor and the UI
launchpad), or of every portfolio in ``portfolios.yaml`` (``all_portfolios: true``; the
quarterly schedule). The computation is :func:`quant_pipeline.app.recommendation.prepare_packet`,
the same one ``quant-pipeline orders`` calls, so the UI and the CLI give the same table.
"""

import json
from dataclasses import dataclass
from datetime import date

import dagster as dg
import polars as pl

from quant_pipeline.app.packets import packet_paths, write_packet
from quant_pipeline.app.recommendation import (
    Packet,
    file_sha256,
    market_today,
    prepare_packet,
)
from quant_pipeline.config.orders import OrdersOptions
from quant_pipeline.config.portfolios import load_portfolios
from quant_pipeline.core.accounts.holdings import HoldingsError
from quant_pipeline.core.accounts.orders import OrdersError
from quant_pipeline.core.accounts.portfolios import (
    PortfoliosConfigError,
    PortfolioSpec,
    portfolio_name,
)
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.tables import reads
from quant_pipeline.settings import outbox_dir, portfolios_file

GROUP = "orders"
KINDS = {"duckdb", "polars"}
ORDERS_OP = "orders_packets"
# What prepare_packet reads (backtest.labels when present: the packet's bias labels).
ORDERS_READS = reads(
    "portfolio.target_weights", "curated.prices", "curated.securities", "backtest.labels"
)
UPSTREAM = ORDERS_READS.deps


class OrdersConfig(dg.Config, OrdersOptions):
    """Which portfolio to build orders for; unset fields come from ``portfolios.yaml``.

    The fields are :class:`~quant_pipeline.config.orders.OrdersOptions` (shared with the CLI)."""


def resolve_specs(config: OrdersOptions) -> list[PortfolioSpec]:
    """The portfolio(s) of a run: ``portfolios.yaml`` entries with the run config on top."""
    try:
        portfolios = load_portfolios(portfolios_file())
        if config.all_portfolios:
            if not portfolios.portfolios:
                raise dg.Failure(
                    description=f"all_portfolios: no portfolios listed in {portfolios_file()}"
                )
            return list(portfolios.portfolios.values())
        spec = portfolios.get(portfolio_name(config.portfolio))
        return [spec.with_overrides("run config", **config.portfolio_overrides())]
    except PortfoliosConfigError as exc:
        raise dg.Failure(description=str(exc)) from exc


def _as_of(config: OrdersOptions) -> date:
    return config.as_of_date or market_today()


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
        outbox,
        packet.spec.name,
        packet.as_of,
        packet.table,
        packet.manifest,
        packet.summary(),
        packet.sections(),
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
    wh = warehouse.get()
    outbox = config.outbox or str(outbox_dir())
    packets = _prepared_packets(context, specs, as_of, wh, market.settings().source, outbox)
    _warn_if_holdings_changed(context, config, packets)
    written, failures = {}, packets.failures
    for packet in packets.built:
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
    yield from _packet_results(packets.built, written, as_of)


@dataclass(frozen=True)
class _Prepared:
    built: list[Packet]
    failures: list[dg.Failure]


def _prepared_packets(
    context, specs: list[PortfolioSpec], as_of: date, wh, source, outbox
) -> _Prepared:
    """Every portfolio's packet (nothing written); one portfolio's failure raises at once."""
    built: list[Packet] = []
    failures: list[dg.Failure] = []
    for spec in specs:
        try:
            built.append(prepare_packet(wh, spec, as_of=as_of, data_source=source, outbox=outbox))
        except (HoldingsError, OrdersError, ValueError) as exc:
            context.log.error(f"portfolio {spec.name}: {exc}")
            failures.append(_failure(spec.name, exc))
    if failures and len(specs) == 1:
        raise failures[0]  # nothing written
    return _Prepared(built, failures)


def _warn_if_holdings_changed(context, config: OrdersOptions, packets: _Prepared) -> None:
    if config.holdings_sha256 and config.holdings_file and packets.built:
        if file_sha256(config.holdings_file) != config.holdings_sha256:
            context.log.warning(
                f"{config.holdings_file} changed since the sensor saw it; orders use the current "
                "content (a new run follows for it)"
            )


def _packet_results(packets: list[Packet], written: dict[str, dict[str, str]], as_of: date):
    """The three MaterializeResults: orders, packets, live holdings."""
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
            changes=dg.MetadataValue.json(
                json.loads(json.dumps({p.spec.name: p.changes for p in packets}, default=str))
            ),
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


orders_assets = [orders_packets]
