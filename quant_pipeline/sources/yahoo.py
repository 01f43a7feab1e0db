"""The ``yahoo`` source: Yahoo Finance through yfinance (prices, actions, statements, profiles).

One ``yfinance.Ticker`` per ticker, fetched on a bounded thread pool. Each ticker is retried with
exponential backoff and jitter on rate limiting (HTTP 429, ``YFRateLimitError``) and network
errors; a failure of one ticker never fails the others. Every attempt is recorded in
:attr:`YahooSource.ingest_log` (the ingestion assets write it to ``raw.ingest_log``).

yfinance hides most errors by default and returns empty frames instead (also when offline). The
source sets ``yfinance.config.debug.hide_exceptions = False`` so errors surface with their reason,
and still treats an empty answer as a failure: when no ticker returned rows it raises
:class:`SourceError` saying Yahoo is unreachable; when more than ``max_failed_share`` of the
tickers failed it raises naming them; otherwise it returns what came back.

Prices: Yahoo's chart API returns OHLC and volume already adjusted for splits (not dividends).
The source undoes the split adjustment with the splits it received, so ``close`` is the price as
traded that day and ``adj_close`` is Yahoo's split-and-dividend adjusted close. This is exact when
the window runs to today (the default; an incremental ``start`` is fine); with an explicit
``end`` in the past, splits after ``end`` are not seen and prices stay adjusted for them.
Dividends are likewise restated per share as paid.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from quant_pipeline.core.data.schema import (
    OHLC_COLUMNS,
    PRICE_VALUE_COLUMNS,
    RAW_CORPORATE_ACTIONS,
    RAW_FUNDAMENTALS,
    RAW_INGEST_LOG,
    RAW_MEMBERSHIP,
    RAW_PRICES,
    RAW_SECURITIES,
    UTC_TS,
    conform,
    empty,
)
from quant_pipeline.sources.base import FetchRequest, SourceError
from quant_pipeline.sources.universe import (
    current_members,
    default_universe_path,
    load_universe,
    to_last_member_day,
)

logger = logging.getLogger(__name__)

INGEST_LOG_SCHEMA = RAW_INGEST_LOG

# Yahoo statement row names (as yfinance labels them) per canonical item, in order of
# preference: for each period the first row with a value wins.
YAHOO_ROWS: dict[str, tuple[str, ...]] = {
    "revenue": ("Total Revenue", "Operating Revenue"),
    "gross_profit": ("Gross Profit",),
    "operating_income": ("Operating Income", "Total Operating Income As Reported"),
    "ebit": ("EBIT",),
    "net_income": (
        "Net Income",
        "Net Income Common Stockholders",
        "Net Income From Continuing Operation Net Minority Interest",
    ),
    # cash-flow statement, printed negative (an outflow); curation keeps the amount
    "dividends_paid": ("Cash Dividends Paid", "Common Stock Dividend Paid"),
    "total_assets": ("Total Assets",),
    "total_equity": (
        "Stockholders Equity",
        "Common Stock Equity",
        "Total Equity Gross Minority Interest",
    ),
    "total_debt": ("Total Debt", "Long Term Debt And Capital Lease Obligation", "Long Term Debt"),
    "cash": (
        "Cash And Cash Equivalents",
        "Cash Cash Equivalents And Short Term Investments",
        "Cash Financial",
    ),
    "current_assets": ("Current Assets",),
    "current_liabilities": ("Current Liabilities",),
    "net_ppe": ("Net PPE",),
    "shares_outstanding": ("Ordinary Shares Number", "Share Issued"),
    "short_term_debt": ("Current Debt", "Current Debt And Capital Lease Obligation"),
    "preferred_stock": ("Preferred Stock", "Preferred Stock Equity"),
    "minority_interest": ("Minority Interest",),
}

# `.info` keys per raw.securities column, first present wins.
PROFILE_KEYS: dict[str, tuple[str, ...]] = {
    "name": ("longName", "shortName"),
    "sector": ("sector",),
    "industry": ("industry",),
    "exchange": ("exchange", "fullExchangeName"),
    "country": ("country",),
    "quote_type": ("quoteType",),
    "currency": ("currency", "financialCurrency"),
    "shares_outstanding": ("sharesOutstanding", "impliedSharesOutstanding"),
    # quoteSummary's defaultKeyStatistics module (yfinance merges it into .info)
    "float_shares": ("floatShares",),
    "market_cap": ("marketCap",),
}

# An earnings announcement more than this long after a period end is not that period's report.
MAX_REPORT_LAG = timedelta(days=120)


def yahoo_symbol(ticker: str) -> str:
    """Yahoo's spelling of a ticker: share classes use '-' ('BRK.B' -> 'BRK-B')."""
    return ticker.replace(".", "-")


class EmptyResult(Exception):
    """Yahoo answered but had no data for the ticker (unknown, delisted, or no statements)."""


@dataclass
class _Outcome:
    ticker: str
    status: str
    value: Any
    rows: int
    error: str | None
    attempts: int
    started_at: datetime
    finished_at: datetime


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if isinstance(status, int) else None


def _is_rate_limit(exc: BaseException) -> bool:
    if _http_status(exc) == 429:
        return True
    text = f"{type(exc).__name__} {exc}"
    return "RateLimit" in text or "Too Many Requests" in text


def _is_network(exc: BaseException) -> bool:
    """Connection-level failures and 5xx answers (an HTTP 4xx is an answer, not a network error)."""
    status = _http_status(exc)
    if status is not None:
        return status >= 500
    names = {cls.__name__ for cls in type(exc).__mro__}
    network = {
        "ConnectionError",
        "Timeout",
        "ReadTimeout",
        "ConnectTimeout",
        "TimeoutError",
        "DNSError",
        "ProxyError",
        "SSLError",
        "ChunkedEncodingError",
        "CurlError",
    }
    return bool(names & network) or "Could not resolve host" in str(exc)


def _is_missing(exc: BaseException) -> bool:
    """Yahoo answered that it has nothing for this symbol (unknown, delisted, no statements)."""
    if _http_status(exc) == 404:
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc)
    return (
        "YFTickerMissingError" in names
        or "Not Found" in text
        or "Empty fundamentals-timeseries result" in text
    )


def retryable(exc: BaseException) -> bool:
    """True for rate limiting and network errors (worth another attempt after a pause)."""
    return _is_rate_limit(exc) or _is_network(exc)


class YahooSource:
    """Market data from Yahoo Finance via yfinance (see the module docstring).

    Parameters: ``universe_tickers`` (default: current members of the shipped S&P 500 file, or
    of ``universe_path``), ``max_workers`` threads, ``retries`` extra attempts per ticker,
    ``backoff_base`` seconds (pause before retry k is ``backoff_base * 2**k * (1 + U[0,1))``),
    ``session`` (a ``requests.Session`` / curl_cffi session given to yfinance; tests pass a
    replaying one), ``max_failed_share`` of tickers that may fail before the fetch raises,
    ``earnings_dates`` (look up report dates), ``abort_after`` attempts failing with network
    errors before any success, after which the remaining tickers are skipped (offline fails in
    seconds), ``sleep`` and
    ``rng`` (injectable for tests), ``run_id`` for the ingest log, ``benchmark_tickers`` whose
    prices are fetched beside the universe's (the ``market`` resource passes SPY and IWM by
    default; a missing one is logged and listed in ``missing_benchmarks``, not a failure; no
    fundamentals or profiles for them).
    """

    name = "yahoo"

    def __init__(
        self,
        universe_tickers: Sequence[str] | None = None,
        max_workers: int = 4,
        retries: int = 4,
        backoff_base: float = 1.0,
        session: Any = None,
        max_failed_share: float = 0.5,
        *,
        universe_path: str | Path | None = None,
        earnings_dates: bool = True,
        abort_after: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        run_id: str | None = None,
        benchmark_tickers: Sequence[str] = (),
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if not 0.0 <= max_failed_share <= 1.0:
            raise ValueError(f"max_failed_share must be in [0, 1], got {max_failed_share}")
        self._universe_path = Path(universe_path) if universe_path else default_universe_path()
        if universe_tickers is None:
            universe_tickers = current_members(load_universe(self._universe_path))
        self._tickers = [t.strip().upper() for t in universe_tickers if t.strip()]
        self.benchmark_tickers = [
            t.strip().upper() for t in benchmark_tickers if t.strip().upper() not in self._tickers
        ]
        self.missing_benchmarks: list[str] = []
        self.max_workers = max_workers
        self.retries = retries
        self.backoff_base = backoff_base
        self.session = session
        self.max_failed_share = max_failed_share
        self.earnings_dates = earnings_dates
        self.abort_after = abort_after
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._history: dict[str, pl.DataFrame] = {}
        self._history_tried: set[str] = set()
        self._network_failures = 0
        self._last_network_error = ""
        self._successes = 0

    # -- yfinance plumbing ----------------------------------------------------------------------
    def _ticker(self, ticker: str) -> Any:
        import yfinance as yf

        # Errors must raise (with their reason) instead of turning into empty frames.
        yf.config.debug.hide_exceptions = False
        yf.config.network.retries = 0  # the source retries, with backoff and a log
        symbol = yahoo_symbol(ticker)
        if self.session is not None:
            return yf.Ticker(symbol, session=self.session)
        return yf.Ticker(symbol)

    @staticmethod
    def _clear_response_cache() -> None:
        # yfinance memoises some GETs (statements, past price windows): a retry must ask again.
        from yfinance.data import YfData

        YfData.cache_get.cache_clear()

    # -- the fetch loop -------------------------------------------------------------------------
    def _attempt(self, dataset: str, ticker: str, fn: Callable[[str], Any]) -> _Outcome:
        started = datetime.now(UTC)
        attempts = 0
        while True:
            with self._lock:
                skip = self._successes == 0 and self._network_failures >= self.abort_after
            if skip:
                return _Outcome(
                    ticker, "error", None, 0,
                    f"skipped: {self._network_failures} attempts failed with network errors "
                    f"and none succeeded (last: {self._last_network_error})",
                    attempts, started, datetime.now(UTC),
                )  # fmt: skip
            attempts += 1
            try:
                value, rows = fn(ticker)
            except EmptyResult as exc:
                return _Outcome(ticker, "empty", None, 0, str(exc), attempts, started,
                                datetime.now(UTC))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one ticker's failure is data, not a crash
                if _is_missing(exc) and not retryable(exc):
                    return _Outcome(ticker, "empty", None, 0, _describe(exc), attempts, started,
                                    datetime.now(UTC))  # fmt: skip
                aborted = False
                if _is_network(exc):
                    # Count attempts, not tickers: offline, every attempt fails at once, and
                    # waiting out each ticker's backoff would take minutes.
                    with self._lock:
                        self._network_failures += 1
                        self._last_network_error = _describe(exc)
                        aborted = (
                            self._successes == 0 and self._network_failures >= self.abort_after
                        )
                if retryable(exc) and attempts <= self.retries and not aborted:
                    pause = self.backoff_base * 2 ** (attempts - 1) * (1 + self._rng.random())
                    logger.info("%s %s: %s; retry %d in %.1fs", dataset, ticker, exc, attempts,
                                pause)  # fmt: skip
                    self._sleep(pause)
                    self._clear_response_cache()
                    continue
                return _Outcome(ticker, "error", None, 0, _describe(exc), attempts, started,
                                datetime.now(UTC))  # fmt: skip
            with self._lock:
                self._successes += 1
                self._network_failures = 0
            status = "ok" if rows else "empty"
            error = None if rows else "Yahoo returned no rows"
            return _Outcome(ticker, status, value, rows, error, attempts, started,
                            datetime.now(UTC))  # fmt: skip

    def _run(
        self,
        dataset: str,
        tickers: Iterable[str],
        fn: Callable[[str], Any],
        empty_is_failure: bool,
        check: bool = True,
    ) -> list[_Outcome]:
        tickers = list(dict.fromkeys(tickers))
        if not tickers:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(tickers))) as pool:
            outcomes = list(pool.map(lambda t: self._attempt(dataset, t, fn), tickers))
        with self._lock:
            for o in outcomes:
                self._log.append(
                    {
                        "run_id": self.run_id,
                        "dataset": dataset,
                        "ticker": o.ticker,
                        "rows": o.rows,
                        "status": o.status,
                        "error": o.error,
                        "attempts": o.attempts,
                        "started_at": o.started_at,
                        "finished_at": o.finished_at,
                    }
                )
        if check:
            self._check(dataset, outcomes, empty_is_failure)
        return outcomes

    def _check(self, dataset: str, outcomes: list[_Outcome], empty_is_failure: bool) -> None:
        ok = [o for o in outcomes if o.status == "ok"]
        if not ok:
            errors = [o.error for o in outcomes if o.error]
            real = [e for e in errors if not e.startswith("skipped")]
            last = (real or errors or ["no error reported"])[-1]
            names = ", ".join(o.ticker for o in outcomes[:5])
            raise SourceError(
                f"yahoo {dataset}: no data came back for any of {len(outcomes)} tickers "
                f"({names}{', ...' if len(outcomes) > 5 else ''}); the network or Yahoo Finance "
                f"is unreachable (or rate limiting). Last error: {last}"
            )
        bad = {"error", "empty"} if empty_is_failure else {"error"}
        failed = [o for o in outcomes if o.status in bad]
        share = len(failed) / len(outcomes)
        if share > self.max_failed_share:
            listed = ", ".join(f"{o.ticker} ({o.error})" for o in failed[:20])
            raise SourceError(
                f"yahoo {dataset}: {len(failed)} of {len(outcomes)} tickers failed "
                f"({share:.0%} > max_failed_share {self.max_failed_share:.0%}): {listed}"
                f"{' ...' if len(failed) > 20 else ''}"
            )
        if failed:
            logger.warning(
                "yahoo %s: %d of %d tickers failed: %s",
                dataset,
                len(failed),
                len(outcomes),
                ", ".join(o.ticker for o in failed),
            )

    @property
    def ingest_log(self) -> pl.DataFrame:
        """Every ticker fetch so far (INGEST_LOG_SCHEMA): one row per ticker and dataset."""
        with self._lock:
            rows = list(self._log)
        return pl.DataFrame(rows, schema=INGEST_LOG_SCHEMA)

    def failed_tickers(self, dataset: str | None = None) -> list[str]:
        """Tickers whose last fetch (of ``dataset``, or any) ended in 'error' or 'empty'."""
        log = self.ingest_log
        if dataset is not None:
            log = log.filter(pl.col("dataset") == dataset)
        return sorted(log.filter(pl.col("status") != "ok")["ticker"].unique().to_list())

    # -- Source interface -------------------------------------------------------------------------
    def universe(self) -> list[str]:
        """The configured tickers (default: current members of the shipped S&P 500 list)."""
        return list(self._tickers)

    def _tickers_for(self, request: FetchRequest) -> list[str]:
        return list(request.tickers) if request.tickers is not None else self.universe()

    def _fetch_history(self, ticker: str, request: FetchRequest) -> tuple[pl.DataFrame, int]:
        start = request.per_ticker_start.get(ticker, request.start)
        kwargs: dict[str, Any] = {"auto_adjust": False, "actions": True, "interval": "1d"}
        if start is not None:
            kwargs["start"] = start.isoformat()
            if request.end is not None:
                kwargs["end"] = (request.end + timedelta(days=1)).isoformat()
        elif request.end is not None:
            kwargs["start"] = "1900-01-01"
            kwargs["end"] = (request.end + timedelta(days=1)).isoformat()
        else:
            kwargs["period"] = "max"
        frame = self._ticker(ticker).history(**kwargs)
        if frame is None or len(frame) == 0:
            raise EmptyResult(f"{ticker}: Yahoo returned no prices")
        history = history_to_frame(frame, ticker)
        # Yahoo answers from period1 already; trimming also guards against a wider answer.
        if start is not None:
            history = history.filter(pl.col("date") >= start)
        if request.end is not None:
            history = history.filter(pl.col("date") <= request.end)
        if history.height == 0:
            raise EmptyResult(f"{ticker}: Yahoo returned no prices since {start}")
        return history, history.height

    def _histories(self, request: FetchRequest) -> dict[str, pl.DataFrame]:
        outcomes = self._run(
            "prices",
            self._tickers_for(request),
            lambda t: self._fetch_history(t, request),
            empty_is_failure=True,
        )
        if request.tickers is None and self.benchmark_tickers:
            # Benchmarks beside the universe: one missing is a warning, never a failure.
            extra = self._run(
                "prices",
                self.benchmark_tickers,
                lambda t: self._fetch_history(t, request),
                empty_is_failure=True,
                check=False,
            )
            self.missing_benchmarks = [o.ticker for o in extra if o.status != "ok"]
            if self.missing_benchmarks:
                logger.warning(
                    "yahoo prices: benchmark ticker(s) %s not available: %s",
                    ", ".join(self.missing_benchmarks),
                    "; ".join(str(o.error) for o in extra if o.status != "ok"),
                )
            outcomes = [*outcomes, *extra]
        found = {o.ticker: o.value for o in outcomes if o.status == "ok"}
        self._history.update(found)
        self._history_tried.update(o.ticker for o in outcomes)
        return found

    def prices(self, request: FetchRequest) -> pl.DataFrame:
        """Daily prices (RAW_PRICES): close as traded, Yahoo's adjusted close, volume as traded."""
        histories = self._histories(request)
        if not histories:
            return empty(RAW_PRICES)
        frame = pl.concat([h for h in histories.values()], how="vertical")
        return self._stamp(unadjusted_prices(frame), RAW_PRICES)

    def corporate_actions(self, request: FetchRequest) -> pl.DataFrame:
        """Splits (ratio) and cash dividends per share as paid, from the same chart responses.

        Reuses the histories fetched by :meth:`prices` (tickers that failed there are not asked
        again); fetches the others.
        """
        wanted = self._tickers_for(request)
        missing = [t for t in wanted if t not in self._history_tried]
        if missing:
            self._histories(FetchRequest(tuple(missing), request.start, request.end,
                                         request.per_ticker_start))  # fmt: skip
        frames = [self._history[t] for t in wanted if t in self._history]
        if not frames:
            return empty(RAW_CORPORATE_ACTIONS)
        return self._stamp(actions_from_history(pl.concat(frames)), RAW_CORPORATE_ACTIONS)

    def _fetch_fundamentals(self, ticker: str) -> tuple[pl.DataFrame, int]:
        yt = self._ticker(ticker)
        frames = []
        for period_type, *statements in (
            ("Q", "quarterly_income_stmt", "quarterly_balance_sheet", "quarterly_cashflow"),
            ("A", "income_stmt", "balance_sheet", "cashflow"),
        ):
            for attr in statements:
                try:
                    statement = getattr(yt, attr)
                except Exception as exc:
                    # A missing statement (e.g. no quarterly data) is not a failure of the others.
                    if _is_missing(exc) and not retryable(exc):
                        continue
                    raise
                frames.append(statement_to_long(statement, ticker, period_type))
        long = pl.concat(frames, how="vertical") if frames else pl.DataFrame()
        if long.height == 0:
            raise EmptyResult(f"{ticker}: Yahoo has no income, balance or cash-flow statement")
        long = long.unique(["ticker", "period_end", "period_type", "item"], keep="first")
        if self.earnings_dates:
            long = attach_report_dates(long, self._earnings_dates(yt, ticker))
        return long, long.height

    def _earnings_dates(self, yt: Any, ticker: str) -> list[date]:
        """Past earnings announcement dates, or [] when Yahoo does not expose them."""
        try:
            frame = yt.get_earnings_dates(limit=40)
        except Exception as exc:  # noqa: BLE001 - report dates are optional: fall back to lag
            logger.info("%s: no earnings dates (%s); report_date stays null", ticker, exc)
            return []
        if frame is None or len(frame) == 0:
            return []
        return sorted({ts.date() for ts in frame.index})

    def fundamentals(self, request: FetchRequest) -> pl.DataFrame:
        """Quarterly and annual statement items (RAW_FUNDAMENTALS) mapped with YAHOO_ROWS from
        the income statement, balance sheet and cash-flow statement (dividends paid).

        ``report_date`` is the first earnings date within 120 days after the period end when
        Yahoo exposes earnings dates, else null (the curated layer applies the lag rule).
        """
        outcomes = self._run(
            "fundamentals", self._tickers_for(request), self._fetch_fundamentals, False
        )
        frames = [o.value for o in outcomes if o.status == "ok"]
        if not frames:
            return empty(RAW_FUNDAMENTALS)
        return self._stamp(pl.concat(frames, how="vertical"), RAW_FUNDAMENTALS)

    def _fetch_profile(self, ticker: str) -> tuple[dict[str, Any], int]:
        info = self._ticker(ticker).info
        if not info or not any(info.get(k) for keys in PROFILE_KEYS.values() for k in keys):
            raise EmptyResult(f"{ticker}: Yahoo returned no profile")
        return profile_from_info(info, ticker), 1

    def securities(self, request: FetchRequest) -> pl.DataFrame:
        """Profiles (RAW_SECURITIES) from ``Ticker.info``."""
        outcomes = self._run("securities", self._tickers_for(request), self._fetch_profile, False)
        rows = [o.value for o in outcomes if o.status == "ok"]
        if not rows:
            return empty(RAW_SECURITIES)
        frame = pl.DataFrame(rows, schema={k: RAW_SECURITIES[k] for k in rows[0]})
        return self._stamp(frame, RAW_SECURITIES)

    def membership(self, request: FetchRequest) -> pl.DataFrame:
        """Membership intervals of the universe file (universe named after the file)."""
        universe = to_last_member_day(load_universe(self._universe_path))
        frame = universe.with_columns(pl.lit(self._universe_path.stem).alias("universe"))
        if request.tickers is not None:
            frame = frame.filter(pl.col("ticker").is_in(list(request.tickers)))
        return self._stamp(frame, RAW_MEMBERSHIP)

    def _stamp(self, frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        frame = frame.with_columns(
            pl.lit(self.name).alias("source"),
            pl.lit(datetime.now(UTC)).cast(UTC_TS).alias("ingested_at"),
        )
        return conform(frame, schema)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500]


def history_to_frame(history: Any, ticker: str) -> pl.DataFrame:
    """A yfinance ``history(auto_adjust=False, actions=True)`` pandas frame as polars.

    Columns out: ticker, date (exchange-local), open, high, low, close, adj_close, volume (all
    as Yahoo gives them, i.e. split-adjusted), dividend, split (0 when none).
    """
    pdf = history.reset_index()
    date_col = "Date" if "Date" in pdf.columns else pdf.columns[0]
    dates = [ts.date() for ts in pdf[date_col]]

    def col(name: str) -> list[float | None]:
        if name not in pdf.columns:
            return [None] * len(pdf)
        return [None if v != v else float(v) for v in pdf[name].tolist()]

    return pl.DataFrame(
        {
            "ticker": [ticker] * len(pdf),
            "date": dates,
            "open": col("Open"),
            "high": col("High"),
            "low": col("Low"),
            "close": col("Close"),
            "adj_close": col("Adj Close"),
            "volume": col("Volume"),
            "dividend": col("Dividends"),
            "split": col("Stock Splits"),
        },
        schema={
            "ticker": pl.String,
            "date": pl.Date,
            **dict.fromkeys(PRICE_VALUE_COLUMNS, pl.Float64),
            "dividend": pl.Float64,
            "split": pl.Float64,
        },
    )


def _split_factor() -> pl.Expr:
    """Product of the split ratios strictly after each row's date, per ticker (1 when none).

    Expects rows sorted by ticker, date and a ``split`` column (0 or null = no split).
    """
    ratio = pl.when(pl.col("split") > 0).then(pl.col("split")).otherwise(1.0)
    # Reverse cumulative product within the ticker, excluding the row itself.
    return (ratio.reverse().cum_prod().reverse() / ratio).over("ticker")


def unadjusted_prices(history: pl.DataFrame) -> pl.DataFrame:
    """Undo Yahoo's split adjustment: prices x later split ratios, volume / them.

    ``history`` is the frame of :func:`history_to_frame`. A 4:1 split on D leaves D and later
    rows unchanged and multiplies earlier prices by 4 (the price as traded before the split).
    ``adj_close`` is kept as Yahoo gives it.
    """
    frame = history.sort("ticker", "date").with_columns(_split_factor().alias("_factor"))
    return frame.with_columns(
        *[(pl.col(c) * pl.col("_factor")).alias(c) for c in OHLC_COLUMNS],
        (pl.col("volume") / pl.col("_factor")).alias("volume"),
    ).drop("_factor")


def actions_from_history(history: pl.DataFrame) -> pl.DataFrame:
    """Splits and dividends (ticker, date, action, value) from :func:`history_to_frame` rows.

    Yahoo restates dividends for later splits; they are multiplied back to the amount paid per
    share at the time.
    """
    frame = history.sort("ticker", "date").with_columns(_split_factor().alias("_factor"))
    splits = frame.filter(pl.col("split") > 0).select(
        "ticker", "date", pl.lit("split").alias("action"), pl.col("split").alias("value")
    )
    dividends = frame.filter(pl.col("dividend") > 0).select(
        "ticker",
        "date",
        pl.lit("dividend").alias("action"),
        (pl.col("dividend") * pl.col("_factor")).alias("value"),
    )
    return pl.concat([splits, dividends]).sort("ticker", "date", "action")


def statement_to_long(statement: Any, ticker: str, period_type: str) -> pl.DataFrame:
    """A yfinance statement (rows = Yahoo names, columns = period ends) to canonical long rows.

    For each canonical item and period the first of its :data:`YAHOO_ROWS` names with a value
    wins. Output: ticker, period_end, period_type, item, value (report_date added later).
    """
    schema = {
        "ticker": pl.String,
        "period_end": pl.Date,
        "period_type": pl.String,
        "item": pl.String,
        "value": pl.Float64,
    }
    if statement is None or len(statement) == 0:
        return pl.DataFrame(schema=schema)
    rows: list[tuple[str, date, str, str, float]] = []
    index = set(statement.index)
    for column in statement.columns:
        period_end = column.date() if hasattr(column, "date") else date.fromisoformat(str(column))
        for item, names in YAHOO_ROWS.items():
            for name in names:
                if name in index:
                    value = statement.at[name, column]
                    if value == value and value is not None:  # not NaN
                        rows.append((ticker, period_end, period_type, item, float(value)))
                        break
    return pl.DataFrame(rows, schema=schema, orient="row")


def attach_report_dates(long: pl.DataFrame, earnings: Sequence[date]) -> pl.DataFrame:
    """Add ``report_date``: the first earnings date after ``period_end`` within 120 days.

    ``long`` has ticker, period_end, ...; ``earnings`` are announcement dates. Periods with no
    announcement in that window (or no dates at all) get null.
    """
    if not earnings:
        return long.with_columns(pl.lit(None, dtype=pl.Date).alias("report_date"))
    dates = pl.DataFrame({"report_date": sorted(earnings)}, schema={"report_date": pl.Date})
    periods = long.select("period_end").unique().sort("period_end")
    matched = periods.join_asof(
        dates.with_columns(pl.col("report_date").alias("_key")),
        left_on="period_end",
        right_on="_key",
        strategy="forward",
        allow_exact_matches=False,
    ).with_columns(
        pl.when(pl.col("report_date") - pl.col("period_end") <= MAX_REPORT_LAG)
        .then(pl.col("report_date"))
        .otherwise(None)
        .alias("report_date")
    )
    return long.join(matched.select("period_end", "report_date"), on="period_end", how="left")


def profile_from_info(info: dict[str, Any], ticker: str) -> dict[str, Any]:
    """A raw.securities row (without source / ingested_at) from a yfinance ``.info`` dict."""
    row: dict[str, Any] = {"ticker": ticker}
    for column, keys in PROFILE_KEYS.items():
        value = next((info[k] for k in keys if info.get(k) not in (None, "")), None)
        if column in ("shares_outstanding", "float_shares", "market_cap") and value is not None:
            value = float(value)
        row[column] = value
    return row
