"""``quant-pipeline orders``: the order table for a portfolio, printed and written as a packet.

Reads the warehouse read-only (the same :func:`~quant_pipeline.app.recommendation.prepare_packet`
as the orders asset, so the table is the same) and writes the packet files to the outbox; only
the Dagster asset writes ``orders.*`` tables. Unset options come from ``portfolios.yaml`` for the
named portfolio, then from its ``defaults``.
"""

import argparse
import sys
from datetime import date
from pathlib import Path

from quant_pipeline.app.packets import write_packet
from quant_pipeline.app.recommendation import format_orders, prepare_packet
from quant_pipeline.core.accounts.holdings import HoldingsError
from quant_pipeline.core.accounts.orders import OrdersError
from quant_pipeline.core.accounts.portfolios import (
    PortfoliosConfigError,
    load_portfolios,
    portfolio_name,
)
from quant_pipeline.settings import from_env, outbox_dir, portfolios_file
from quant_pipeline.storage.warehouse import Warehouse, WarehouseError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "orders",
        help="orders for a capital amount or a holdings file (prints them, writes the packet)",
    )
    p.add_argument("--strategy", help="strategy name (default: portfolios.yaml, else the first)")
    p.add_argument("--capital", type=float, help="new money to invest, in dollars")
    p.add_argument("--holdings", help="holdings CSV: ticker, shares[, amount_invested]")
    p.add_argument("--cash", type=float, help="cash already in the account")
    p.add_argument("--fractional", action="store_const", const=True, help="fractional shares")
    p.add_argument("--min-trade", dest="min_trade", type=float, help="skip smaller trades ($)")
    p.add_argument(
        "--keep-unlisted",
        dest="sell_unlisted",
        action="store_const",
        const=False,
        help="keep holdings outside the strategy instead of selling them",
    )
    p.add_argument(
        "--no-commission",
        dest="commission",
        action="store_const",
        const=False,
        help="no commission (default: Interactive Brokers fixed pricing)",
    )
    p.add_argument("--portfolio", default="default", help="portfolio name (portfolios.yaml)")
    p.add_argument("--as-of", dest="as_of", help="as-of date YYYY-MM-DD (default: today, NY)")
    p.add_argument("--max-price-age", dest="max_price_age", type=int, help="business days")
    p.add_argument("--outbox", help="packet folder (default: QUANT_PIPELINE_OUTBOX or outbox/)")
    p.add_argument("--no-packet", action="store_true", help="print only; write no files")
    p.add_argument("--warehouse")


def run(args: argparse.Namespace) -> int:
    """Print the orders and write the packet; errors go to stderr with exit status 1."""
    try:
        as_of = date.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        print(f"quant-pipeline orders: --as-of {args.as_of!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        settings = from_env()
        spec = (
            load_portfolios(portfolios_file())
            .get(portfolio_name(args.portfolio))
            .with_overrides(
                strategy=args.strategy,
                capital=args.capital,
                holdings=args.holdings,
                cash=args.cash,
                fractional=args.fractional,
                min_trade_value=args.min_trade,
                sell_unlisted=args.sell_unlisted,
                commission=args.commission,
                max_price_age_days=args.max_price_age,
            )
        )
        packet = prepare_packet(
            Warehouse(settings.warehouse).for_readers(),  # the last completed run's copy
            spec,
            as_of=as_of,
            data_source=settings.source,
        )
    except (HoldingsError, OrdersError, PortfoliosConfigError, WarehouseError) as exc:
        print(f"quant-pipeline orders: {exc}", file=sys.stderr)
        return 1
    print(format_orders(packet))
    if not args.no_packet:
        outbox = Path(args.outbox) if args.outbox else outbox_dir()
        files = write_packet(
            outbox, spec.name, packet.as_of, packet.table, packet.manifest, packet.summary()
        )
        print(f"packet: {files.csv} and {files.json}", file=sys.stderr)
    return 0
