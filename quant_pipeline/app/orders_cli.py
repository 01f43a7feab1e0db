"""``quant-pipeline orders``: the order table for a portfolio, printed and written as a packet.

Reads the warehouse read-only (the same :func:`~quant_pipeline.app.recommendation.prepare_packet`
as the orders asset, so the table is the same) and writes the packet files to the outbox; only
the Dagster asset writes ``orders.*`` tables. Unset options come from ``portfolios.yaml`` for the
named portfolio, then from its ``defaults``. The flags are generated from
:class:`~quant_pipeline.config.orders.OrdersOptions`, the model the orders asset's run config
uses, so the two cannot drift.
"""

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from quant_pipeline.app.packets import write_packet
from quant_pipeline.app.recommendation import format_orders, prepare_packet
from quant_pipeline.config.orders import OrdersOptions, add_orders_arguments, options_from_args
from quant_pipeline.config.portfolios import load_portfolios
from quant_pipeline.core.accounts.holdings import HoldingsError
from quant_pipeline.core.accounts.orders import OrdersError
from quant_pipeline.core.accounts.portfolios import PortfoliosConfigError, portfolio_name
from quant_pipeline.core.config_errors import describe_validation_error
from quant_pipeline.settings import Settings, add_settings_arguments, from_env
from quant_pipeline.storage.warehouse import Warehouse, WarehouseError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "orders",
        help="orders for a capital amount or a holdings file (prints them, writes the packet)",
    )
    add_orders_arguments(p)
    p.add_argument("--no-packet", action="store_true", help="print only; write no files")
    add_settings_arguments(p, only=("warehouse",))


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Print the orders and write the packet; errors go to stderr with exit status 1."""
    try:
        options = options_from_args(args)
    except ValidationError as exc:
        print(
            f"quant-pipeline orders: {describe_validation_error(exc, OrdersOptions)}",
            file=sys.stderr,
        )
        return 2
    settings = settings or from_env()
    outbox = Path(options.outbox) if options.outbox else settings.outbox
    try:
        spec = (
            load_portfolios(settings.portfolios)
            .get(portfolio_name(options.portfolio))
            .with_overrides("command line", **options.portfolio_overrides())
        )
        packet = prepare_packet(
            Warehouse(settings.warehouse).for_readers(),  # the last completed run's copy
            spec,
            as_of=options.as_of_date,
            data_source=settings.source,
            outbox=outbox,
        )
    except (HoldingsError, OrdersError, PortfoliosConfigError, WarehouseError, ValueError) as exc:
        print(f"quant-pipeline orders: {exc}", file=sys.stderr)
        return 1
    print(format_orders(packet))
    if not args.no_packet:
        files = write_packet(
            outbox,
            spec.name,
            packet.as_of,
            packet.table,
            packet.manifest,
            packet.summary(),
            packet.sections(),
        )
        print(f"packet: {files.csv} and {files.json}", file=sys.stderr)
    return 0
