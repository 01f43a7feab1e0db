"""Orders for one portfolio from the warehouse: shared by the orders asset and the CLI.

Reads the warehouse READ-ONLY (``portfolio.target_weights``, ``curated.prices``,
``curated.securities``, ``backtest.labels`` when present), calls the pure core
(:func:`~quant_pipeline.core.accounts.holdings.parse_holdings` through
:func:`~quant_pipeline.app.holdings_file.read_holdings`,
:func:`~quant_pipeline.core.accounts.orders.build_orders`) and returns a :class:`Packet`: the
order table, the manifest, and the rows the asset writes to ``orders.*``. Writing is the
caller's job (:func:`quant_pipeline.app.packets.write_packet` for files; only the asset writes
the warehouse).

Timing: the as-of date ``D`` is today in New York unless given (the injectable clock). The
weights are the strategy's latest rebalance on or before ``D``; each ticker is priced at its
latest ``close`` (as traded) on or before ``D``. Orders are refused when any price needed is more
than ``max_price_age_days`` business days (Mon-Fri) older than ``D``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from quant_pipeline.app.books import Book, resized_book, strategy_book, theme_book
from quant_pipeline.app.holdings_file import read_holdings
from quant_pipeline.app.packets import code_version, previous_packet
from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.accounts.changes import book_frame, format_changes, packet_changes
from quant_pipeline.core.accounts.orders import OrdersError, OrdersResult, build_orders
from quant_pipeline.core.accounts.packet import packet_id
from quant_pipeline.core.accounts.portfolios import PortfolioSpec
from quant_pipeline.core.backtest.costs import CommissionModel
from quant_pipeline.core.data.dataset_version import (
    DATASET_TABLES,
    EXCLUDED_COLUMNS,
    dataset_version,
)
from quant_pipeline.core.strategies.spec import StrategyConfigError
from quant_pipeline.storage.warehouse import Warehouse

MARKET_TZ = ZoneInfo("America/New_York")
LABELS_TABLE = "backtest.labels"

# Column order of the order table people read (CSV, CLI, orders.orders after the packet keys).
TABLE_COLUMNS = [
    "ticker",
    "sector",
    "price",
    "price_date",
    "current_shares",
    "target_shares",
    "shares_to_trade",
    "side",
    "trade_value",
    "fees",
    "target_weight",
    "current_weight",
    "resulting_weight",
]


class StalePricesError(OrdersError):
    """The latest prices are too old to trade on; the message says how old and the limit."""


def market_today() -> date:
    """Today's date in New York (where the market closes)."""
    return datetime.now(MARKET_TZ).date()


def business_days_between(start: date, end: date) -> int:
    """Mon-Fri days after ``start`` up to and including ``end`` (Fri -> next Mon = 1)."""
    return int(np.busday_count(start, end))


@dataclass(frozen=True)
class Packet:
    """Everything one run produces for one portfolio (nothing written yet)."""

    spec: PortfolioSpec
    strategy: str
    as_of: date
    rebalance_date: date
    table: pl.DataFrame
    result: OrdersResult
    holdings: pl.DataFrame | None
    manifest: dict[str, Any]
    target: pl.DataFrame
    changes: dict[str, Any]

    @property
    def packet_id(self) -> str:
        return packet_id(self.spec.name, self.as_of)

    def summary(self) -> dict[str, Any]:
        return self.result.summary()

    def sections(self) -> dict[str, Any]:
        """The packet JSON's sections beside manifest/summary/orders: the target book and
        the changes against the previous packet of the portfolio."""
        return {"target": self.target.to_dicts(), "changes": self.changes}

    def order_rows(self) -> pl.DataFrame:
        """Rows for ``orders.orders``: packet keys then :data:`TABLE_COLUMNS`."""
        return self.table.select(
            pl.lit(self.packet_id).alias("packet_id"),
            pl.lit(self.spec.name).alias("portfolio"),
            pl.lit(self.strategy).alias("strategy"),
            pl.lit(self.as_of).alias("as_of"),
            pl.lit(self.rebalance_date).alias("rebalance_date"),
            *TABLE_COLUMNS,
        )

    def holdings_rows(self) -> pl.DataFrame | None:
        """Rows for ``orders.live_holdings`` (None when the run had no holdings file)."""
        if self.holdings is None:
            return None
        return self.holdings.select(
            pl.lit(self.spec.name).alias("portfolio"),
            pl.lit(self.packet_id).alias("packet_id"),
            pl.lit(self.as_of).alias("as_of"),
            "ticker",
            "shares",
            "cost_basis",
            pl.lit(self.manifest["inputs"]["holdings_file"]).alias("holdings_file"),
            pl.lit(self.manifest["inputs"]["holdings_sha256"]).alias("holdings_sha256"),
        )

    def packet_row(self, files: dict[str, str] | None = None) -> pl.DataFrame:
        """One row for ``orders.packets`` (the manifest's key facts and the manifest as JSON)."""
        import json

        m = self.manifest
        s = self.summary()
        row = {
            "packet_id": self.packet_id,
            "portfolio": self.spec.name,
            "strategy": self.strategy,
            "as_of": self.as_of,
            "rebalance_date": self.rebalance_date,
            "latest_price_date": date.fromisoformat(m["latest_price_date"]),
            "strategy_config_hash": m["strategy_config_hash"],
            "created_at": datetime.fromisoformat(m["created_at"]),
            "data_source": m["data_source"],
            "package_version": m["code_version"]["package_version"],
            "git_commit": m["code_version"]["git_commit"],
            "capital": m["inputs"]["capital"],
            "holdings_file": m["inputs"]["holdings_file"],
            "holdings_sha256": m["inputs"]["holdings_sha256"],
            "portfolio_value": s["portfolio_value"],
            "cash_before": s["cash_before"],
            "cash_after": s["cash_after"],
            "total_fees": s["total_fees"],
            "n_orders": m["row_counts"]["orders"],
            "n_buys": s["n_buys"],
            "n_sells": s["n_sells"],
            "csv_path": (files or {}).get("csv"),
            "json_path": (files or {}).get("json"),
            "manifest": json.dumps(
                {**m, "files": files, "changes": self.changes}, default=str, sort_keys=True
            ),
        }
        schema = {
            "packet_id": pl.String,
            "portfolio": pl.String,
            "strategy": pl.String,
            "as_of": pl.Date,
            "rebalance_date": pl.Date,
            "latest_price_date": pl.Date,
            "strategy_config_hash": pl.String,
            "created_at": pl.Datetime("us", "UTC"),
            "data_source": pl.String,
            "package_version": pl.String,
            "git_commit": pl.String,
            "capital": pl.Float64,
            "holdings_file": pl.String,
            "holdings_sha256": pl.String,
            "portfolio_value": pl.Float64,
            "cash_before": pl.Float64,
            "cash_after": pl.Float64,
            "total_fees": pl.Float64,
            "n_orders": pl.Int64,
            "n_buys": pl.Int64,
            "n_sells": pl.Int64,
            "csv_path": pl.String,
            "json_path": pl.String,
            "manifest": pl.String,
        }
        return pl.DataFrame([row], schema=schema)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def choose_strategy(warehouse: Warehouse, wanted: str | None) -> str:
    """``wanted`` if ``portfolio.target_weights`` has it, else the first strategy there."""
    if not warehouse.has_table("portfolio.target_weights"):
        raise OrdersError(
            f"warehouse {warehouse.path} has no portfolio.target_weights; materialize the "
            "pipeline first (`quant-pipeline run` or the full_pipeline_job)"
        )
    available = sorted(
        warehouse.read_table("portfolio.target_weights", columns=["strategy"])["strategy"]
        .unique()
        .to_list()
    )
    if not available:
        raise OrdersError("portfolio.target_weights is empty; materialize the pipeline first")
    if wanted is None:
        return available[0]
    if wanted not in available:
        raise OrdersError(
            f"strategy {wanted!r} has no target weights in portfolio.target_weights; "
            f"available: {available}"
        )
    return wanted


def latest_prices(warehouse: Warehouse, tickers: list[str], as_of: date) -> pl.DataFrame:
    """Latest ``close`` on or before ``as_of`` per ticker: ticker, price, price_date."""
    if not tickers:
        return pl.DataFrame(
            schema={"ticker": pl.String, "price": pl.Float64, "price_date": pl.Date}
        )
    prices = warehouse.read_table(
        "curated.prices", columns=["ticker", "date", "close"], filters={"ticker": tickers}
    )
    return (
        prices.filter((pl.col("date") <= as_of) & pl.col("close").is_not_null())
        .sort("ticker", "date")
        .group_by("ticker", maintain_order=True)
        .last()
        .select("ticker", pl.col("close").alias("price"), pl.col("date").alias("price_date"))
    )


def known_tickers(warehouse: Warehouse) -> list[str]:
    """Tickers the pipeline knows (``curated.securities``; the priced tickers when the data has
    no profiles, a price-only folder): a holding outside them is an error."""
    known = warehouse.read_table("curated.securities", columns=["ticker"])["ticker"]
    if known.is_empty():
        known = warehouse.read_table("curated.prices", columns=["ticker"])["ticker"].unique()
    return known.to_list()


def security_names(warehouse: Warehouse) -> pl.DataFrame:
    """``ticker, name`` of curated.securities (empty when the table has no names)."""
    securities = warehouse.read_table("curated.securities")
    if "name" not in securities.columns:
        return pl.DataFrame(schema={"ticker": pl.String, "name": pl.String})
    return securities.select("ticker", "name")


def data_provenance(warehouse: Warehouse) -> tuple[str | None, dict[str, Any]]:
    """(data source, loaded) from the warehouse, not the environment: the source of the latest
    load of raw.prices, and per raw dataset the sources with rows and last load time."""
    table = warehouse.provenance()
    prices = table.filter(pl.col("dataset") == "prices")
    source = prices["source"][0] if prices.height else None
    loaded: dict[str, Any] = {}
    for row in table.iter_rows(named=True):
        loaded.setdefault(row["dataset"], {})[row["source"]] = {
            "rows": row["rows"],
            "last_ingested_at": row["last_ingested_at"].isoformat(),
        }
    return source, loaded


def bias_labels(warehouse: Warehouse, strategy: str) -> list[dict[str, Any]] | None:
    """Rows of ``backtest.labels`` for ``strategy`` (all rows without a strategy column)."""
    if not warehouse.has_table(LABELS_TABLE):
        return None
    labels = warehouse.read_table(LABELS_TABLE)
    if "strategy" in labels.columns:
        labels = labels.filter(pl.col("strategy") == strategy)
    return [{k: _plain(v) for k, v in row.items()} for row in labels.to_dicts()]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def check_price_age(prices: pl.DataFrame, as_of: date, max_age: int) -> None:
    """Raise :class:`StalePricesError` when a needed price is > ``max_age`` business days old."""
    aged = prices.with_columns(
        pl.Series(
            "age",
            [business_days_between(d, as_of) for d in prices["price_date"]],
            dtype=pl.Int64,
        )
    )
    stale = aged.filter(pl.col("age") > max_age).sort("price_date", "ticker")
    if stale.is_empty():
        return
    newest = aged["price_date"].max()
    if stale.height == aged.height:
        raise StalePricesError(
            f"refusing to emit orders: the latest prices in curated.prices are from {newest}, "
            f"{business_days_between(newest, as_of)} business days before the as-of date "
            f"{as_of}; the limit is {max_age} (max_price_age_days). Refresh the data "
            "(weekly_refresh_job, or `quant-pipeline run`) and try again"
        )
    listed = ", ".join(
        f"{t} ({d}, {a} days)"
        for t, d, a in stale.select("ticker", "price_date", "age").iter_rows()
    )
    raise StalePricesError(
        f"refusing to emit orders: {stale.height} ticker(s) that must trade have prices older "
        f"than {max_age} business days before {as_of} (max_price_age_days): {listed}"
    )


def prepare_packet(
    warehouse: Warehouse,
    spec: PortfolioSpec,
    as_of: date | None = None,
    data_source: str | None = None,
    now: datetime | None = None,
    outbox: str | Path | None = None,
) -> Packet:
    """Build the orders and manifest for ``spec`` from the warehouse (read-only; writes nothing).

    Raises :class:`~quant_pipeline.core.accounts.holdings.HoldingsError` (every bad row of the
    holdings file), :class:`StalePricesError`, or :class:`OrdersError` (no strategy, no price).
    ``outbox``: where earlier packets are; the latest one of this portfolio dated before
    ``as_of`` is the base of the ``changes`` section (none: every name is new).
    """
    as_of = as_of or market_today()
    if spec.capital is None and spec.holdings is None:
        raise OrdersError(
            f"portfolio {spec.name!r}: give a capital amount, a holdings file or both"
        )
    book = book_weights(warehouse, spec, as_of)
    strategy, rebalance, weights = book.label, book.rebalance, book.weights
    holdings, holdings_hash = portfolio_holdings(warehouse, spec)
    needed = sorted(set(weights["ticker"]) | set([] if holdings is None else holdings["ticker"]))
    prices = trade_prices(warehouse, needed, as_of, spec.max_price_age_days)
    result = build_orders(
        weights,
        prices.select("ticker", "price"),
        capital=spec.capital,
        holdings=holdings,
        cash=spec.cash,
        fractional=spec.fractional,
        min_trade_value=spec.min_trade_value,
        sell_unlisted=spec.sell_unlisted,
        commission=CommissionModel() if spec.commission else CommissionModel.free(),
    )
    table = order_table(warehouse, result, prices, needed)
    inputs = PacketInputs(strategy, rebalance, weights, holdings, holdings_hash, prices, book)
    manifest = packet_manifest(warehouse, spec, as_of, inputs, table, data_source, now)
    earlier = previous_packet(outbox, spec.name, as_of) if outbox is not None else None
    target = book_frame(weights).filter(pl.col("weight") > 0)
    changes = packet_changes(
        target,
        None if earlier is None else earlier.target,
        None if earlier is None else earlier.packet_id,
        spec.weight_change_threshold,
    )
    manifest["previous_packet_id"] = changes["previous_packet_id"]
    return Packet(
        target=target,
        changes=changes,
        spec=spec,
        strategy=strategy,
        as_of=as_of,
        rebalance_date=rebalance,
        table=table,
        result=result,
        holdings=holdings,
        manifest=manifest,
    )


def data_version(warehouse: Warehouse) -> str | None:
    """The dataset version of the warehouse's curated inputs (core.data.dataset_version)."""
    return dataset_version(warehouse.content_fingerprints(DATASET_TABLES, EXCLUDED_COLUMNS))


def book_weights(warehouse: Warehouse, spec: PortfolioSpec, as_of: date) -> Book:
    """What ``spec`` trades to: its theme, or its strategy (resized when ``stocks`` is set)."""
    if spec.theme is not None:
        return theme_book(warehouse, spec.theme, spec.stocks, as_of)
    strategy = choose_strategy(warehouse, spec.strategy)
    if spec.stocks is not None:
        return resized_book(warehouse, strategy, spec.stocks, as_of)
    return strategy_book(warehouse, strategy, as_of, strategy_config_hash(strategy))


def strategy_config_hash(strategy: str) -> str | None:
    """The shipped strategy file's config hash (None: weights from a file no longer shipped)."""
    try:
        return load_strategies(names=[strategy])[strategy].config_hash
    except StrategyConfigError:
        return None  # say so in the manifest, don't fail


def portfolio_holdings(
    warehouse: Warehouse, spec: PortfolioSpec
) -> tuple[pl.DataFrame | None, str | None]:
    """The portfolio's holdings file, validated against ``curated.securities``, and its hash."""
    if spec.holdings is None:
        return None, None
    holdings = read_holdings(
        spec.holdings, known_tickers=known_tickers(warehouse), securities=security_names(warehouse)
    )
    return holdings, file_sha256(spec.holdings)


def trade_prices(
    warehouse: Warehouse, needed: list[str], as_of: date, max_age: int
) -> pl.DataFrame:
    """Latest prices of every ticker that must trade; raises when one is missing or stale."""
    prices = latest_prices(warehouse, needed, as_of)
    missing = sorted(set(needed) - set(prices["ticker"]))
    if missing:
        raise OrdersError(
            f"no price on or before {as_of} in curated.prices for {len(missing)} ticker(s) that "
            f"must trade: {', '.join(missing)}"
        )
    check_price_age(prices, as_of, max_age)
    return prices


def order_table(
    warehouse: Warehouse, result: OrdersResult, prices: pl.DataFrame, needed: list[str]
) -> pl.DataFrame:
    """The orders with price dates and sectors, in :data:`TABLE_COLUMNS` order."""
    # a holding outside the strategy has no sector in the weights: take the security's
    profiles = warehouse.read_table(
        "curated.securities", columns=["ticker", "sector"], filters={"ticker": needed}
    ).rename({"sector": "profile_sector"})
    return (
        result.orders.join(prices.select("ticker", "price_date"), on="ticker", how="left")
        .join(profiles.unique("ticker"), on="ticker", how="left")
        .with_columns(pl.col("sector").fill_null(pl.col("profile_sector")))
        .select(TABLE_COLUMNS)
    )


@dataclass(frozen=True)
class PacketInputs:
    """What the orders were built from (recorded in the manifest)."""

    strategy: str
    rebalance: date
    weights: pl.DataFrame
    holdings: pl.DataFrame | None
    holdings_hash: str | None
    prices: pl.DataFrame
    book: Book


def packet_manifest(
    warehouse: Warehouse,
    spec: PortfolioSpec,
    as_of: date,
    inputs: PacketInputs,
    table: pl.DataFrame,
    data_source: str | None,
    now: datetime | None,
) -> dict[str, Any]:
    """The packet's manifest: inputs, provenance, row counts and the bias labels."""
    sides = table["side"].value_counts()
    counts = dict(zip(sides["side"], sides["count"], strict=True))
    prices, holdings = inputs.prices, inputs.holdings
    source, loaded = data_provenance(warehouse)
    return {
        "packet_id": packet_id(spec.name, as_of),
        "portfolio": spec.name,
        "as_of": as_of.isoformat(),
        "created_at": (now or datetime.now(UTC)).isoformat(),
        "strategy": inputs.strategy,
        "strategy_config_hash": inputs.book.config_hash,
        "theme": inputs.book.theme,
        "stocks": inputs.book.stocks,
        "rebalance_date": inputs.rebalance.isoformat(),
        "latest_price_date": prices["price_date"].max().isoformat(),
        "oldest_price_date": prices["price_date"].min().isoformat(),
        "max_price_age_days": spec.max_price_age_days,
        "price_field": "close (as traded), latest on or before as_of",
        "data_source": source,
        "data_loaded": loaded,
        # what the environment / run config named; differs from data_source when the
        # warehouse was loaded from another source than the one configured now
        "configured_source": data_source,
        "warehouse": str(warehouse.path),
        "code_version": code_version(),
        "dataset_version": data_version(warehouse),
        "inputs": {
            "capital": spec.capital,
            "cash": spec.cash,
            "holdings_file": str(spec.holdings) if spec.holdings else None,
            "holdings_sha256": inputs.holdings_hash,
            "fractional": spec.fractional,
            "min_trade_value": spec.min_trade_value,
            "sell_unlisted": spec.sell_unlisted,
            "commission": "ib_fixed" if spec.commission else "free",
        },
        "row_counts": {
            "orders": table.height,
            "buys": counts.get("BUY", 0),
            "sells": counts.get("SELL", 0),
            "holds": counts.get("HOLD", 0),
            "target_weights": inputs.weights.height,
            "holdings": 0 if holdings is None else holdings.height,
            "prices": prices.height,
        },
        "bias_labels": bias_labels(warehouse, inputs.strategy),
    }


def format_orders(packet: Packet) -> str:
    """The order table and the cash line as text, for a terminal."""
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=250,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        float_precision=4,
    ):
        text = str(packet.table)
    s = packet.summary()
    lines = [
        f"portfolio {packet.spec.name} · strategy {packet.strategy} "
        f"(rebalance {packet.rebalance_date}) · as of {packet.as_of} · prices of "
        f"{packet.manifest['latest_price_date']}",
        text,
        f"portfolio value ${s['portfolio_value']:,.2f} · cash before ${s['cash_before']:,.2f} · "
        f"cash left ${s['cash_after']:,.2f} · fees ${s['total_fees']:,.2f} · "
        f"{s['n_buys']} buys, {s['n_sells']} sells",
    ]
    for ticker, reason in s["skipped"]:
        lines.append(f"skipped {ticker}: {reason}")
    for ticker, reason in s["trimmed"]:
        lines.append(f"trimmed {ticker}: {reason}")
    lines.extend(format_changes(packet.changes))
    return "\n".join(lines)
