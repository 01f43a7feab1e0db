"""Statistics of a backtest: daily returns (and closed trades) in, one number per metric out.

Pure polars (plus ``math``). The definitions of every metric are written once, in
``docs/metrics.md``; the conventions that change the numbers are:

* ``n`` is the number of daily returns; annualisation uses ``periods_per_year`` (252).
* The risk-free rate is an annual rate turned into a daily one: ``(1 + rf) ** (1 / 252) - 1``.
  Excess returns are ``r - rf_daily``.
* Means are arithmetic; standard deviations are sample (``ddof=1``).
* Equity starts at 1.0 before the first return, so drawdowns are measured from the running
  maximum of ``[1.0, equity_1, ..., equity_n]``.
* Where empyrical-reloaded has the same metric the formula is the same as empyrical's
  (sharpe_ratio, sortino_ratio, annual_volatility, max_drawdown, cagr = ``annual_return``,
  calmar_ratio, alpha, beta, value_at_risk_95 = ``value_at_risk(cutoff=0.05)``); the tests
  compare against it. empyrical takes a per-period risk-free rate: pass it ``rf_daily``.
* A metric that is undefined on the data (no losing day for Sortino, no drawdown for Calmar,
  fewer than two days for a standard deviation, no closed trade) is null, never NaN or inf.

The frames never look at dates beyond those in ``daily``: every metric is a function of the
rows given, so the caller chooses the evaluation window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.frames import require_columns

# Below this the benchmark's variance is treated as zero (beta undefined), as in empyrical.
_MIN_VARIANCE = 1e-30

# How each metric reads: a fraction shown as a percentage, a ratio, a count of days, ...
# The order is the order of the rows returned by performance_metrics.
METRIC_KINDS: dict[str, str] = {
    "total_return": "percent",
    "cagr": "percent",
    "annual_volatility": "percent",
    "annual_variance": "decimal",
    "sharpe_ratio": "ratio",
    "probabilistic_sharpe_ratio": "percent",
    "sortino_ratio": "ratio",
    "calmar_ratio": "ratio",
    "max_drawdown": "percent",
    "max_drawdown_duration_days": "days",
    "win_rate_days": "percent",
    "best_month": "percent",
    "worst_month": "percent",
    "value_at_risk_95": "percent",
    "trading_days": "days",
    "average_turnover": "percent",
    "annual_turnover": "percent",
    "orders_per_month": "decimal",
    "average_invested": "percent",
    "total_costs": "percent",
    "total_fees": "money",
    "total_slippage": "money",
    "alpha": "percent",
    "beta": "ratio",
    "tracking_error": "percent",
    "information_ratio": "ratio",
    "treynor_ratio": "ratio",
    "net_profit_currency": "money",
    "closed_trades": "count",
    "mean_winning_trade_return": "percent",
    "mean_losing_trade_return": "percent",
    "winning_trade_share": "percent",
    "losing_trade_share": "percent",
    "win_loss_return_ratio": "ratio",
    "mean_trade_return": "percent",
}
TRADE_METRICS: tuple[str, ...] = (
    "closed_trades",
    "mean_winning_trade_return",
    "mean_losing_trade_return",
    "winning_trade_share",
    "losing_trade_share",
    "win_loss_return_ratio",
    "mean_trade_return",
)
COMPARISON_METRICS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
)
METRICS_SCHEMA: dict[str, pl.DataType] = {"metric": pl.String, "value": pl.Float64}


class MetricsInputError(ValueError):
    """The daily or trades frame handed to a metric function breaks one of its rules."""


def daily_risk_free(risk_free_rate: float, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    """The per-period rate equivalent to the annual ``risk_free_rate``: (1+rf)^(1/P) - 1."""
    return (1.0 + risk_free_rate) ** (1.0 / periods_per_year) - 1.0


def _clean_daily(daily: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """``daily`` sorted by date after checking the rules every metric relies on."""
    require_columns(daily, ["date", *columns], "daily", MetricsInputError)
    if daily.height == 0:
        raise MetricsInputError("daily frame is empty: metrics need at least one daily return")
    if "strategy" in daily.columns and daily["strategy"].n_unique() > 1:
        raise MetricsInputError(
            "daily frame holds several strategies "
            f"({daily['strategy'].unique().sort().to_list()}); pass one strategy at a time"
        )
    duplicated = daily.filter(pl.col("date").is_duplicated())
    if duplicated.height:
        raise MetricsInputError(
            f"daily frame has {duplicated.height} rows with a duplicated date, "
            f"e.g. {duplicated['date'].head(3).to_list()}: one row per date is required"
        )
    for col in columns:
        bad = daily.filter(pl.col(col).is_null() | ~pl.col(col).is_finite() | (pl.col(col) < -1.0))
        if bad.height:
            raise MetricsInputError(
                f"daily column {col!r} has {bad.height} null, non-finite or < -100% values "
                f"(dates {bad['date'].head(3).to_list()}): every day needs a return >= -1"
            )
    return daily.sort("date")


def _equity(returns: pl.Expr) -> pl.Expr:
    return (1.0 + returns).cum_prod()


def drawdown(returns: pl.Expr) -> pl.Expr:
    """Drawdown per row of a column of daily returns (an expression, rows in date order):
    equity / running max of equity - 1, the running max including the starting 1.0."""
    equity = _equity(returns)
    peak = pl.max_horizontal(equity.cum_max(), pl.lit(1.0))
    return equity / peak - 1.0


def drawdown_series(daily: pl.DataFrame, returns_col: str = "portfolio_return") -> pl.DataFrame:
    """Drawdown per day from ``date, <returns_col>``: ``date, drawdown`` (<= 0), sorted by date.

    Equity is rebuilt from the returns (starting at 1.0, which counts as a peak), so the result
    matches the engine's ``drawdown`` column and works for the benchmark column alike.
    """
    frame = _clean_daily(daily, [returns_col])
    return frame.select("date", drawdown(pl.col(returns_col)).alias("drawdown"))


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0.0:
        return None
    return _finite(numerator / denominator)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _one(returns: pl.Series, expr: pl.Expr) -> float | None:
    """``expr`` (written on ``pl.col("r")``) evaluated over ``returns``: one polars pass."""
    return returns.to_frame("r").select(expr).item()


_R = pl.col("r")

# ---- one function per metric -------------------------------------------------------------------
# ``returns``: the daily simple returns of the window (a float Series, no nulls, in date order),
# as performance_metrics checks them. Each is the one definition of its metric in the package
# (docs/metrics.md); the table, the tear sheet and the charts all call these.


def total_return(returns: pl.Series) -> float:
    """Compounded return of the window: ``prod(1 + r) - 1``."""
    return _one(returns, (1.0 + _R).product() - 1.0)


def cagr(returns: pl.Series, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float | None:
    """Compound annual growth rate: ``(1 + total_return) ** (P / n) - 1``."""
    return _finite((1.0 + total_return(returns)) ** (float(periods_per_year) / returns.len()) - 1.0)


def annual_volatility(
    returns: pl.Series, periods_per_year: int = TRADING_DAYS_PER_YEAR
) -> float | None:
    """``std(r, ddof=1) * sqrt(P)`` of the raw (not excess) returns; null below two days."""
    std = _finite(_one(returns, _R.std(ddof=1)))
    return None if std is None else std * math.sqrt(float(periods_per_year))


def annual_variance(
    returns: pl.Series, periods_per_year: int = TRADING_DAYS_PER_YEAR
) -> float | None:
    """``var(r, ddof=1) * P`` (= annual_volatility squared); null below two days."""
    std = _finite(_one(returns, _R.std(ddof=1)))
    return None if std is None else std**2 * float(periods_per_year)


def excess_returns(
    returns: pl.Series, risk_free_rate: float = 0.0, periods_per_year: int = TRADING_DAYS_PER_YEAR
) -> pl.Series:
    """``r - rf_daily``, the daily risk-free rate from the annual one (:func:`daily_risk_free`)."""
    return returns - daily_risk_free(risk_free_rate, periods_per_year)


def sharpe_ratio(
    returns: pl.Series, risk_free_rate: float = 0.0, periods_per_year: int = TRADING_DAYS_PER_YEAR
) -> float | None:
    """Annualised Sharpe ratio ``mean(e) / std(e, ddof=1) * sqrt(P)``, ``e`` the excess returns."""
    ex = excess_returns(returns, risk_free_rate, periods_per_year)
    mean, std = _one(ex, pl.struct(_R.mean().alias("m"), _R.std(ddof=1).alias("s"))).values()
    return _ratio(mean * math.sqrt(float(periods_per_year)), _finite(std))


def probabilistic_sharpe_ratio(
    returns: pl.Series,
    risk_free_rate: float = 0.0,
    benchmark_sharpe: float = 0.0,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> float | None:
    """P(true Sharpe > benchmark_sharpe), Bailey & Lopez de Prado (2012), per-period Sharpe.

    PSR = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2)) with SR the
    non-annualised Sharpe of the excess returns (sample std), skew / kurtosis (not excess)
    population moments, ``benchmark_sharpe`` SR* in the same per-period units, and ``n`` every
    daily return of the window (the first day included). Null below 3 days, for constant
    returns, or when the variance term is not positive.
    """
    excess = excess_returns(returns, risk_free_rate, periods_per_year)
    n = excess.len()
    std = excess.std(ddof=1)
    if n < 3 or std is None or std == 0.0:
        return None
    sharpe = excess.mean() / std
    centred = excess - excess.mean()
    m2 = (centred**2).mean()
    if m2 == 0.0:  # constant up to rounding: polars' std can be a few ulps above zero
        return None
    skew = (centred**3).mean() / m2**1.5
    kurtosis = (centred**4).mean() / m2**2
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if variance <= 0.0:
        return None
    return _normal_cdf((sharpe - benchmark_sharpe) * math.sqrt(n - 1) / math.sqrt(variance))


def lean_probabilistic_sharpe_ratio(
    returns: pl.Series, benchmark_sharpe: float, risk_free_per_period: float = 0.0
) -> float:
    """LEAN's ``Statistics.ProbabilisticSharpeRatio`` (QuantConnect/Lean, Statistics.cs), as LEAN
    computes it: not the project's :func:`probabilistic_sharpe_ratio`.

    ``SR = (mean(r) - rf_p) / std(r)`` (sample std; 0 when the std is 0 or undefined), ``skew``
    the bias-corrected sample skewness G1 and ``kurt`` the bias-corrected sample *excess*
    kurtosis G2 of the raw returns (MathNet's ``Skewness`` / ``Kurtosis``), then
    ``Phi((SR - SR*) / sqrt((1 - skew SR + (kurt - 1) / 4 SR^2) / (n - 1)))``. As in LEAN the
    result is 0 when that square root is undefined and Phi(0) = 0.5 when it is 0.
    """
    n = returns.len()
    std = returns.std(ddof=1) if n >= 2 else None
    sharpe = 0.0 if not std else (returns.mean() - risk_free_per_period) / std
    skew = returns.skew(bias=False) if n >= 3 else None
    kurt = returns.kurtosis(fisher=True, bias=False) if n >= 4 else None
    if skew is None or kurt is None or not (math.isfinite(skew) and math.isfinite(kurt)):
        return 0.0
    variance = (1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe**2) / (n - 1)
    if variance < 0.0:
        return 0.0
    deviation = math.sqrt(variance)
    return _normal_cdf(0.0 if deviation == 0.0 else (sharpe - benchmark_sharpe) / deviation)


def sortino_ratio(
    returns: pl.Series, risk_free_rate: float = 0.0, periods_per_year: int = TRADING_DAYS_PER_YEAR
) -> float | None:
    """``mean(e) * sqrt(P) / DR``, downside deviation ``DR = sqrt(mean(min(e, 0)^2))`` over all
    days; null when no day is below the risk-free rate."""
    ex = excess_returns(returns, risk_free_rate, periods_per_year)
    downside = _one(ex, (_R.clip(upper_bound=0.0) ** 2).mean().sqrt())
    return _ratio(_one(ex, _R.mean()) * math.sqrt(float(periods_per_year)), downside)


def max_drawdown(returns: pl.Series) -> float:
    """Deepest drawdown ``min_t DD_t`` (<= 0), equity rebuilt from 1.0 (which counts as a peak)."""
    return _one(returns, drawdown(_R).min())


def calmar_ratio(returns: pl.Series, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float | None:
    """``cagr / |max_drawdown|``; null for an equity that never falls below its peak."""
    deepest = max_drawdown(returns)
    return _ratio(cagr(returns, periods_per_year), abs(deepest)) if deepest < 0 else None


def max_drawdown_duration(returns: pl.Series) -> int:
    """Longest spell, in trading days, from an equity peak to its recovery (or to the end).

    The starting value 1.0 is day 0. A spell that recovers counts the recovery day: equity
    1.0 -> 1.01 (peak, day 1) -> 0.99 -> 1.00 -> 1.02 (recovered on day 4) lasts 3 days.
    """
    equity = pl.concat([pl.Series([1.0]), (1.0 + returns).cum_prod()])
    frame = pl.DataFrame({"equity": equity}).with_columns(
        # A new high (or a return to the old one) ends the previous spell and starts a new one.
        (pl.col("equity") >= pl.col("equity").cum_max().shift(1, fill_value=0.0))
        .cum_sum()
        .alias("spell")
    )
    spells = (
        frame.group_by("spell")
        .agg(pl.len().alias("rows"))
        .with_columns((pl.col("spell") < pl.col("spell").max()).alias("recovered"))
        .with_columns(
            pl.when(pl.col("rows") == 1)
            .then(0)
            .when(pl.col("recovered"))
            .then(pl.col("rows"))
            .otherwise(pl.col("rows") - 1)
            .alias("duration")
        )
    )
    return int(spells["duration"].max())


def win_rate_days(returns: pl.Series) -> float:
    """Share of days with ``r > 0`` (a flat day is not a win)."""
    return _one(returns, (_R > 0).mean())


def value_at_risk(returns: pl.Series, cutoff: float = 0.05) -> float:
    """Historical daily VaR: the ``cutoff`` quantile of ``r``, linear interpolation (a return)."""
    return _one(returns, _R.quantile(cutoff, interpolation="linear"))


def _return_and_risk(
    frame: pl.DataFrame, returns_col: str, risk_free_rate: float, periods_per_year: int
) -> dict[str, float | None]:
    """The rows of docs/metrics.md "Return and risk", from ``frame`` (checked, sorted)."""
    r = frame[returns_col]
    months = monthly_returns(frame, returns_col)["return"]
    return {
        "total_return": total_return(r),
        "cagr": cagr(r, periods_per_year),
        "annual_volatility": annual_volatility(r, periods_per_year),
        "annual_variance": annual_variance(r, periods_per_year),
        "sharpe_ratio": sharpe_ratio(r, risk_free_rate, periods_per_year),
        "probabilistic_sharpe_ratio": probabilistic_sharpe_ratio(
            r, risk_free_rate, periods_per_year=periods_per_year
        ),
        "sortino_ratio": sortino_ratio(r, risk_free_rate, periods_per_year),
        "max_drawdown": max_drawdown(r),
        "calmar_ratio": calmar_ratio(r, periods_per_year),
        "max_drawdown_duration_days": float(max_drawdown_duration(r)),
        "win_rate_days": win_rate_days(r),
        "best_month": months.max(),
        "worst_month": months.min(),
        "value_at_risk_95": value_at_risk(r, 0.05),
        "trading_days": float(r.len()),
    }


def _trading_costs(
    frame: pl.DataFrame, returns_col: str, benchmark_col: str | None, periods_per_year: int
) -> dict[str, float | None]:
    """Turnover and costs of the strategy (null for the benchmark, whose costs they are not)."""
    strategy_costs = returns_col != benchmark_col
    out: dict[str, float | None] = {}
    if "turnover" in frame.columns and strategy_costs:
        traded = frame["turnover"].fill_null(0.0)
        out["average_turnover"] = _finite(traded.filter(traded > 0).mean())
        out["annual_turnover"] = traded.sum() / float(frame.height) * float(periods_per_year)
    else:
        out["average_turnover"] = out["annual_turnover"] = None
    for name, column in (("total_costs", "costs"), ("total_fees", "fees")):
        given = column in frame.columns and strategy_costs
        out[name] = float(frame[column].fill_null(0.0).sum()) if given else None
    given = "slippage" in frame.columns and strategy_costs
    out["total_slippage"] = float(frame["slippage"].fill_null(0.0).sum()) if given else None
    given = "orders" in frame.columns and strategy_costs
    months = frame.height / (periods_per_year / 12.0)
    out["orders_per_month"] = float(frame["orders"].fill_null(0).sum()) / months if given else None
    out["average_invested"] = (
        average_invested(frame)
        if strategy_costs and {"cash", "portfolio_value"} <= set(frame.columns)
        else None
    )
    return out


def average_invested(daily: pl.DataFrame) -> float | None:
    """Mean over the days of the invested share ``1 - cash / portfolio_value`` (days with no
    positive account value left out); null when there is none. ``daily``: cash, portfolio_value
    (currency, after the day's trades, as in backtest.daily)."""
    require_columns(daily, ["cash", "portfolio_value"], "daily", MetricsInputError)
    invested = daily.filter(pl.col("portfolio_value") > 0).select(
        (1.0 - pl.col("cash") / pl.col("portfolio_value")).mean()
    )
    return _finite(invested.item())


def _trade_metrics(trades: pl.DataFrame) -> dict[str, float | None]:
    require_columns(trades, ["exit_date", "return"], "trades", MetricsInputError)
    closed = trades.filter(pl.col("exit_date").is_not_null())
    returns = pl.col("return")
    if "fees" in closed.columns:
        # fees are a fraction of the entry value, paid out of the trade's return.
        returns = returns - pl.col("fees").fill_null(0.0)
    bad = closed.filter(returns.is_null() | ~returns.is_finite())
    if bad.height:
        raise MetricsInputError(
            f"trades has {bad.height} closed trades with a null or non-finite return "
            f"(rows {bad.head(3).to_dicts()}): a closed trade needs a return"
        )
    stats = closed.select(
        pl.len().cast(pl.Float64).alias("closed_trades"),
        returns.filter(returns > 0).mean().alias("mean_winning_trade_return"),
        returns.filter(returns < 0).mean().alias("mean_losing_trade_return"),
        (returns > 0).mean().alias("winning_trade_share"),
        (returns < 0).mean().alias("losing_trade_share"),
    ).row(0, named=True)
    out: dict[str, float | None] = {k: _finite(v) for k, v in stats.items()}
    win, loss = out["mean_winning_trade_return"], out["mean_losing_trade_return"]
    out["win_loss_return_ratio"] = _ratio(win, None if loss is None else abs(loss))
    if out["closed_trades"]:
        # A side with no trade contributes 0 (its share is 0): the mean closed-trade return.
        out["mean_trade_return"] = out["winning_trade_share"] * (win or 0.0) + out[
            "losing_trade_share"
        ] * (loss or 0.0)
    else:
        out["mean_trade_return"] = None
    return out


def performance_metrics(
    daily: pl.DataFrame,
    trades: pl.DataFrame | None = None,
    risk_free_rate: float = 0.0,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
    benchmark_col: str | None = "benchmark_return",
    returns_col: str = "portfolio_return",
    capital: float | None = None,
) -> pl.DataFrame:
    """Every backtest statistic as a long frame ``metric: str, value: f64`` (see docs/metrics.md).

    ``daily``: one row per trading day (any order, unique dates) with ``date``, ``returns_col``
    and, unless ``benchmark_col`` is None, ``benchmark_col`` - daily simple returns, no nulls -
    and optionally ``turnover`` and ``costs`` (fractions of equity; as in ``backtest.daily``)
    and ``fees`` and ``slippage`` (currency, from the share-based simulation).
    A ``strategy`` column is allowed if it holds one value. ``equity``/``drawdown`` columns are
    not read: equity is rebuilt from the returns so the same call measures the benchmark
    (``returns_col='benchmark_return'``; turnover and costs are then null, being the strategy's).

    ``trades`` (optional): ``exit_date`` (null = still open, ignored), ``return`` and optionally
    ``fees`` (fraction of entry value, subtracted from ``return``). Adds the trade statistics.
    ``capital`` (optional): starting capital, adds ``net_profit_currency``
    ``= capital * (equity_end - 1)``.

    Dates: only the rows given. Rows come out in the order of ``METRIC_KINDS``; undefined values
    are null. Each value comes from the named function of its metric (:func:`sharpe_ratio`,
    :func:`max_drawdown`, ...), the same ones the tear sheet and the charts call.
    """
    if periods_per_year <= 0:
        raise MetricsInputError(f"periods_per_year must be positive, got {periods_per_year}")
    columns = [returns_col] + ([benchmark_col] if benchmark_col else [])
    frame = _clean_daily(daily, columns)
    m = _return_and_risk(frame, returns_col, risk_free_rate, periods_per_year)
    m.update(_trading_costs(frame, returns_col, benchmark_col, periods_per_year))
    rf = daily_risk_free(risk_free_rate, periods_per_year)
    mean_excess = _one(
        excess_returns(frame[returns_col], risk_free_rate, periods_per_year), _R.mean()
    )
    ann = float(periods_per_year)
    m.update(_relative_metrics(frame, returns_col, benchmark_col, rf, ann, mean_excess))
    if capital is not None:
        m["net_profit_currency"] = capital * m["total_return"]
    if trades is not None:
        m.update(_trade_metrics(trades))
    rows = [(name, _finite(m[name])) for name in METRIC_KINDS if name in m]
    return pl.DataFrame(rows, schema=METRICS_SCHEMA, orient="row")


def _relative_metrics(
    frame: pl.DataFrame,
    returns_col: str,
    benchmark_col: str | None,
    rf: float,
    ann: float,
    mean_excess: float,
) -> dict[str, float | None]:
    """alpha, beta (OLS of excess on benchmark excess), tracking error, IR, Treynor."""
    names = ("alpha", "beta", "tracking_error", "information_ratio", "treynor_ratio")
    if benchmark_col is None:
        return dict.fromkeys(names)
    y = pl.col(returns_col) - rf
    x = pl.col(benchmark_col) - rf
    active = pl.col(returns_col) - pl.col(benchmark_col)
    # Population moments on both sides of cov/var: the ddof cancels, as in empyrical.
    s = frame.select(
        ((x - x.mean()) * y).mean().alias("cov"),
        ((x - x.mean()) ** 2).mean().alias("var"),
        y.mean().alias("mean_y"),
        x.mean().alias("mean_x"),
        active.mean().alias("mean_active"),
        active.std(ddof=1).alias("std_active"),
    ).row(0, named=True)
    out: dict[str, float | None] = dict.fromkeys(names)
    if frame.height >= 2 and s["var"] >= _MIN_VARIANCE:
        beta = s["cov"] / s["var"]
        out["beta"] = beta
        alpha_daily = s["mean_y"] - beta * s["mean_x"]
        out["alpha"] = _finite((1.0 + alpha_daily) ** ann - 1.0)
        out["treynor_ratio"] = _ratio(mean_excess * ann, beta)
    std_active = _finite(s["std_active"])
    out["tracking_error"] = None if std_active is None else std_active * math.sqrt(ann)
    # A tracking error that is zero up to rounding (the benchmark against itself) gives no IR.
    if std_active is not None and std_active > 1e-15:
        out["information_ratio"] = s["mean_active"] * ann / out["tracking_error"]
    return out


def compounded(returns_col: str) -> pl.Expr:
    """``prod(1 + r) - 1`` of a column of daily returns: the return of a period (an aggregation)."""
    return (1.0 + pl.col(returns_col)).product() - 1.0


def month_keys() -> list[pl.Expr]:
    """``year: i32, month: i32`` of ``date``: the calendar-month keys of every monthly table."""
    return [
        pl.col("date").dt.year().cast(pl.Int32).alias("year"),
        pl.col("date").dt.month().cast(pl.Int32).alias("month"),
    ]


def _period_returns(daily: pl.DataFrame, returns_col: str, keys: list[pl.Expr]) -> pl.DataFrame:
    frame = _clean_daily(daily, [returns_col])
    return (
        frame.group_by(keys)
        .agg(compounded(returns_col).alias("return"))
        .sort([k.meta.output_name() for k in keys])
    )


def monthly_returns(daily: pl.DataFrame, returns_col: str = "portfolio_return") -> pl.DataFrame:
    """Compounded return per calendar month: ``year: i32, month: i32, return: f64``, sorted.

    ``daily``: ``date`` and ``returns_col`` (daily simple returns). A month partly covered
    (first or last of the backtest) compounds only the days present.
    """
    return _period_returns(daily, returns_col, month_keys())


def annual_returns(daily: pl.DataFrame, returns_col: str = "portfolio_return") -> pl.DataFrame:
    """Compounded return per calendar year: ``year: i32, return: f64``, sorted by year.

    ``daily``: ``date`` and ``returns_col``. Partial first/last years compound the days present.
    """
    keys = [pl.col("date").dt.year().cast(pl.Int32).alias("year")]
    return _period_returns(daily, returns_col, keys)


def rolling_sharpe(
    daily: pl.DataFrame,
    window: int = TRADING_DAYS_PER_YEAR,
    returns_col: str = "portfolio_return",
    risk_free_rate: float = 0.0,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> pl.DataFrame:
    """Annualised Sharpe ratio over the trailing ``window`` days: ``date, rolling_sharpe``.

    ``daily``: ``date`` and ``returns_col``. The value on day t uses days t-window+1 .. t only;
    it is null until ``window`` days exist, or when the window's returns are constant.
    """
    if window < 2:
        raise MetricsInputError(f"rolling_sharpe window must be at least 2 days, got {window}")
    frame = _clean_daily(daily, [returns_col])
    ex = pl.col(returns_col) - daily_risk_free(risk_free_rate, periods_per_year)
    std = ex.rolling_std(window, ddof=1)
    sharpe = ex.rolling_mean(window) / std * math.sqrt(periods_per_year)
    return frame.select(
        "date", pl.when(std > 0).then(sharpe).otherwise(None).alias("rolling_sharpe")
    )


def comparison_table(metrics_long: pl.DataFrame) -> pl.DataFrame:
    """One row per strategy with the headline metrics, for the CLI's strategy comparison.

    ``metrics_long``: ``strategy, metric, value`` (``backtest.metrics``; the benchmark is just
    another strategy, e.g. ``'benchmark'``). Returns ``strategy`` then the ``COMPARISON_METRICS``
    columns (null when a strategy lacks one), strategies in order of first appearance.
    """
    require_columns(
        metrics_long, ["strategy", "metric", "value"], "metrics_long", MetricsInputError
    )
    dup = metrics_long.filter(pl.struct("strategy", "metric").is_duplicated())
    if dup.height:
        raise MetricsInputError(
            f"metrics_long has {dup.height} rows sharing a (strategy, metric), e.g. "
            f"{dup.select('strategy', 'metric').head(3).rows()}: one value per pair is required"
        )
    strategies = metrics_long.select(pl.col("strategy").unique(maintain_order=True))
    wide = (
        metrics_long.filter(pl.col("metric").is_in(COMPARISON_METRICS))
        .select("strategy", "metric", pl.col("value").cast(pl.Float64))
        .pivot(on="metric", on_columns=list(COMPARISON_METRICS), index="strategy", values="value")
    )
    return strategies.join(wide, on="strategy", how="left", maintain_order="left").select(
        "strategy", *[pl.col(c).cast(pl.Float64) for c in COMPARISON_METRICS]
    )
