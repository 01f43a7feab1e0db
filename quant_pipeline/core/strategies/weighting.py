"""Weighting schemes beyond equal weight, applied to the names ``target_weights`` selected.

Selection (top_n by rank under the sector cap) is unchanged; only the weights of the selected
names on each rebalance date D change. Schemes (``portfolio.weighting`` in a strategy YAML):

* ``equal``: 1/n.
* ``score``: w ∝ s_i − min(s over the date's eligible, ranked names), s = score (higher is
  better) or −score for ``rank_sum`` (lower is better); all-equal strengths fall back to 1/n.
* ``inverse_volatility``: w ∝ 1 / volatility (factors.values: annualised, 252 days to D−1).
* ``market_cap``: w ∝ market_cap (factors.values: price of D−1 × latest available shares).
* ``min_variance``: long-only minimum variance under the per-name cap, by projected gradient.
* ``risk_parity``: equal risk contributions w_i (Σw)_i, by cyclical coordinate descent.

The last two use a Ledoit–Wolf (2004) covariance of daily returns over the ``lookback_days``
trading dates strictly BEFORE D (the return dated t is adj_close_t / adj_close_{t−1} − 1, both
dates < D): a rebalance never sees a return of its own day or later. A name with fewer than
``min_history`` returns in the window is dropped on that date (reported); other gaps are
filled with the name's mean (zero deviation).

Then ``max_weight`` caps every name (the excess is shared by the uncapped names in proportion
to their weights, repeated until none exceeds it; impossible when max_weight × n < 1, then 1/n),
and ``turnover_limit`` L limits ½ Σ|w − w_prev| against the previous rebalance's final targets:
w = w_prev + (L / turnover) × (w − w_prev) when turnover > L (the first rebalance, from cash,
is not limited). A convex mix of two capped books is capped, so the cap still holds.
The sector cap limits names per sector; with unequal weights a sector's weight can exceed it:
``weighting_report`` shows the realised maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.frames import require_columns

SCHEMES: tuple[str, ...] = (
    "equal",
    "score",
    "inverse_volatility",
    "market_cap",
    "min_variance",
    "risk_parity",
)
COVARIANCE_SCHEMES = frozenset({"min_variance", "risk_parity"})
BY = "rebalance_date"
EPS = 1e-12
REPORT_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "rebalance_date": pl.Date(),
    "scheme": pl.String(),
    "n_names": pl.Int64(),
    "max_weight": pl.Float64(),
    "max_sector_weight": pl.Float64(),
    "turnover": pl.Float64(),
    "turnover_limited": pl.Boolean(),
    "covariance_shrinkage": pl.Float64(),
    "dropped": pl.String(),
}


class WeightingInputError(ValueError):
    """The inputs of a weighting scheme are missing or unusable; the message names them."""


@dataclass(frozen=True)
class WeightingRules:
    """How the selected names are weighted (see the module docstring)."""

    scheme: str = "equal"
    max_weight: float | None = None
    turnover_limit: float | None = None
    lookback_days: int = TRADING_DAYS_PER_YEAR
    min_history: int = 60
    higher_is_better: bool = True

    @classmethod
    def from_spec(cls, spec: Any) -> WeightingRules:
        """The rules of a StrategySpec's ``portfolio`` (score direction from its scoring)."""
        pf = spec.portfolio
        return cls(
            scheme=pf.weighting,
            max_weight=pf.max_weight,
            turnover_limit=pf.turnover_limit,
            lookback_days=pf.lookback_days,
            higher_is_better=spec.scoring is None or spec.scoring.method != "rank_sum",
        )

    @property
    def is_equal(self) -> bool:
        """True when the weights are target_weights' own 1/n."""
        return self.scheme == "equal" and self.max_weight is None and self.turnover_limit is None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise WeightingInputError(f"weighting {self.scheme!r} unknown; allowed: {SCHEMES}")
        if self.max_weight is not None and not 0 < self.max_weight <= 1:
            raise WeightingInputError(f"max_weight must be in (0, 1], got {self.max_weight}")
        if self.turnover_limit is not None and not 0 < self.turnover_limit <= 1:
            raise WeightingInputError(
                f"turnover_limit must be in (0, 1], got {self.turnover_limit}"
            )
        if self.min_history < 2 or self.lookback_days < self.min_history:
            raise WeightingInputError(
                f"need 2 <= min_history ({self.min_history}) <= lookback_days "
                f"({self.lookback_days})"
            )


def ledoit_wolf(returns: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf (2004) shrinkage of the sample covariance towards mu·I.

    ``returns``: T × N. With X the column-demeaned returns, S = X'X / T, mu = tr(S)/N,
    d² = ||S − mu I||²_F / N, b² = min(d², Σ_t ||x_t x_t' − S||²_F / (N T²)); shrinkage
    δ = b² / d² (0 when d² = 0); Σ = δ mu I + (1 − δ) S. Returns (Σ, δ).
    """
    x = returns - returns.mean(axis=0)
    t, n = x.shape
    s = x.T @ x / t
    mu = np.trace(s) / n
    d2 = float(((s - mu * np.eye(n)) ** 2).sum() / n)
    # Σ_t ||x_t x_t' − S||² = Σ_t ||x_t||⁴ − T ||S||²
    b2_bar = float(((x**2).sum(axis=1) ** 2).sum() - t * (s**2).sum()) / (n * t**2)
    b2 = min(d2, b2_bar)
    shrink = 0.0 if d2 == 0 else b2 / d2
    return shrink * mu * np.eye(n) + (1 - shrink) * s, shrink


def cap_weights(w: np.ndarray, max_weight: float | None) -> np.ndarray:
    """Cap every weight at ``max_weight``; the excess goes to the uncapped names pro rata."""
    w = np.asarray(w, dtype=np.float64) / w.sum()
    if max_weight is None:
        return w
    if max_weight * w.size < 1 - EPS:
        return np.full(w.size, 1.0 / w.size)
    capped = np.zeros(w.size, dtype=bool)
    for _ in range(w.size):
        over = (w > max_weight + EPS) & ~capped
        if not over.any():
            break
        capped |= over
        w[capped] = max_weight
        free = ~capped
        room = 1.0 - max_weight * capped.sum()
        w[free] = w[free] / w[free].sum() * room if w[free].sum() > 0 else room / free.sum()
    return w


def _project_capped_simplex(v: np.ndarray, cap: float) -> np.ndarray:
    """Euclidean projection onto {0 <= w <= cap, Σw = 1} (bisection on the shift)."""
    lo, hi = v.min() - cap, v.max()
    for _ in range(100):
        tau = (lo + hi) / 2
        if np.clip(v - tau, 0, cap).sum() > 1:
            lo = tau
        else:
            hi = tau
    return np.clip(v - (lo + hi) / 2, 0, cap)


def min_variance_weights(cov: np.ndarray, max_weight: float | None = None) -> np.ndarray:
    """argmin w'Σw over 0 <= w <= max_weight (1 without a cap), Σw = 1; projected gradient."""
    n = cov.shape[0]
    cap = 1.0 if max_weight is None else max(max_weight, 1.0 / n)
    step = 1.0 / (2 * np.linalg.eigvalsh(cov).max() + EPS)
    w = np.full(n, 1.0 / n)
    for _ in range(5000):
        new = _project_capped_simplex(w - step * 2 * cov @ w, cap)
        if np.abs(new - w).max() < 1e-12:
            return new
        w = new
    return w


def risk_parity_weights(cov: np.ndarray) -> np.ndarray:
    """Equal risk contributions: y = argmin ½y'Σy − Σ ln y_i (CCD), w = y / Σy."""
    n = cov.shape[0]
    y = 1.0 / np.sqrt(np.diag(cov))
    for _ in range(2000):
        old = y.copy()
        for i in range(n):
            c = cov[i] @ y - cov[i, i] * y[i]
            y[i] = (-c + np.sqrt(c * c + 4 * cov[i, i])) / (2 * cov[i, i])
        if np.abs(y - old).max() < 1e-14 * max(1.0, np.abs(y).max()):
            break
    return y / y.sum()


class PriceHistory:
    """adj_close as a dates × tickers matrix, for trailing returns strictly before a date."""

    def __init__(self, prices: pl.DataFrame, tickers: list[str] | None = None):
        require_columns(
            prices, ["ticker", "date", "adj_close"], "curated.prices", WeightingInputError
        )
        if tickers is not None:
            prices = prices.filter(pl.col("ticker").is_in(tickers))
        wide = prices.pivot(on="ticker", index="date", values="adj_close").sort("date")
        self.dates = wide["date"].to_numpy()
        self.tickers = [c for c in wide.columns if c != "date"]
        self.column = {t: i for i, t in enumerate(self.tickers)}
        self.matrix = wide.select(self.tickers).to_numpy().astype(np.float64)

    def returns_before(
        self, as_of: date, tickers: list[str], lookback: int
    ) -> tuple[np.ndarray, list[str]]:
        """Daily returns (lookback × len(tickers), NaN = unknown) on the dates before ``as_of``.

        Rows are the last ``lookback`` price dates < as_of; a return needs its own and the
        previous price date's adj_close, both < as_of. An unknown ticker is all NaN.
        """
        end = int(np.searchsorted(self.dates, np.datetime64(as_of), side="left"))
        start = max(0, end - lookback - 1)
        cols = [self.column.get(t) for t in tickers]
        block = np.full((end - start, len(tickers)), np.nan)
        for j, c in enumerate(cols):
            if c is not None:
                block[:, j] = self.matrix[start:end, c]
        with np.errstate(divide="ignore", invalid="ignore"):
            rets = block[1:] / block[:-1] - 1.0
        return rets, tickers


def covariance_before(
    history: PriceHistory, as_of: date, tickers: list[str], rules: WeightingRules
) -> tuple[np.ndarray, list[str], list[str], float]:
    """Ledoit–Wolf covariance of the names with >= min_history returns before ``as_of``.

    Returns (Σ, kept tickers, dropped tickers, shrinkage); gaps are filled with the name's mean.
    """
    rets, _ = history.returns_before(as_of, tickers, rules.lookback_days)
    counts = np.isfinite(rets).sum(axis=0) if rets.size else np.zeros(len(tickers), int)
    keep = counts >= rules.min_history
    kept = [t for t, k in zip(tickers, keep, strict=True) if k]
    dropped = [t for t, k in zip(tickers, keep, strict=True) if not k]
    if not kept:
        return np.zeros((0, 0)), kept, dropped, float("nan")
    r = rets[:, keep]
    means = np.nanmean(r, axis=0)
    r = np.where(np.isfinite(r), r, means)
    cov, shrink = ledoit_wolf(r)
    return cov, kept, dropped, shrink


def _raw_weights(
    day: pl.DataFrame, rules: WeightingRules, floor: float | None, history: PriceHistory | None
) -> tuple[list[str], np.ndarray, list[str], float | None]:
    """(tickers, unnormalised weights, dropped tickers, shrinkage) of one date's selection."""
    tickers = day["ticker"].to_list()
    if rules.scheme == "equal":
        return tickers, np.ones(len(tickers)), [], None
    if rules.scheme in COVARIANCE_SCHEMES:
        assert history is not None
        cov, kept, dropped, shrink = covariance_before(history, day[BY][0], tickers, rules)
        if not kept:
            return [], np.zeros(0), dropped, None
        if rules.scheme == "min_variance":
            return kept, min_variance_weights(cov, rules.max_weight), dropped, shrink
        return kept, risk_parity_weights(cov), dropped, shrink
    column = {"score": "score", "inverse_volatility": "volatility", "market_cap": "market_cap"}
    x = day[column[rules.scheme]].cast(pl.Float64).to_numpy()
    if rules.scheme == "score":
        x = x if rules.higher_is_better else -x
        x = x - (floor if floor is not None else np.nanmin(x))
    elif rules.scheme == "inverse_volatility":
        with np.errstate(divide="ignore"):
            x = np.where(x > 0, 1.0 / x, np.nan)
    ok = np.isfinite(x) & (x >= 0)
    dropped = [t for t, k in zip(tickers, ok, strict=True) if not k]
    kept_t = [t for t, k in zip(tickers, ok, strict=True) if k]
    w = x[ok]
    if rules.scheme == "score" and w.sum() <= EPS:
        w = np.ones(w.size)
    return kept_t, w, dropped, None


def limit_turnover(
    previous: dict[str, float], target: dict[str, float], limit: float | None
) -> tuple[dict[str, float], float, bool]:
    """Move from ``previous`` towards ``target`` by at most ``limit`` one-way turnover.

    Returns (weights, turnover of the move, whether the limit bound). No previous book = no limit.
    """
    names = sorted(set(previous) | set(target))
    prev = np.array([previous.get(n, 0.0) for n in names])
    tgt = np.array([target.get(n, 0.0) for n in names])
    turnover = 0.5 * float(np.abs(tgt - prev).sum())
    if limit is None or not previous or turnover <= limit + EPS:
        return target, turnover, False
    mixed = prev + limit / turnover * (tgt - prev)
    return {n: float(v) for n, v in zip(names, mixed, strict=True) if v > EPS}, limit, True


def _by_date(frame: pl.DataFrame):
    """Per date of ``frame`` (sorted by date): its rows (a zero-copy slice), the date, the
    tickers and ticker -> (sector, score, rank). Plain lists: per-date polars selects were most
    of the time of :func:`reweight`."""
    lists = [frame[c].to_list() for c in ("ticker", "sector", "score", "rank")]
    runs = frame.select(pl.col(BY).rle_id()).to_series().to_numpy()
    lo = 0
    for hi in [*(np.flatnonzero(np.diff(runs)) + 1).tolist(), frame.height]:
        names = lists[0][lo:hi]
        rows = zip(lists[1][lo:hi], lists[2][lo:hi], lists[3][lo:hi], strict=True)
        day = frame.slice(lo, hi - lo)
        yield day, day[BY][0], names, dict(zip(names, rows, strict=True))
        lo = hi


def reweight(
    weights: pl.DataFrame,
    rules: WeightingRules,
    scores: pl.DataFrame | None = None,
    values: pl.DataFrame | None = None,
    history: PriceHistory | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Re-weight one strategy's selected names (``target_weights`` output) by ``rules``.

    ``scores``: factors.scores of the strategy (``score`` scheme: the eligible floor per date).
    ``values``: factors.values (rebalance_date, ticker, volatility, market_cap) for
    ``inverse_volatility`` / ``market_cap``. ``history``: a :class:`PriceHistory` for the
    covariance schemes (returns strictly before each date). Returns (weights in
    ``target_weights``' schema, ``REPORT_SCHEMA`` report per date). Dates looked at: D's own
    rows of scores and values (themselves point in time) and prices dated < D.
    """
    if weights.is_empty():
        return weights, pl.DataFrame(schema=REPORT_SCHEMA)
    frame = weights
    if rules.scheme in ("inverse_volatility", "market_cap"):
        if values is None:
            raise WeightingInputError(f"weighting {rules.scheme!r} needs factors.values")
        frame = frame.join(
            values.select(BY, "ticker", "volatility", "market_cap"), on=[BY, "ticker"], how="left"
        )
    floors: dict[date, float] = {}
    if rules.scheme == "score" and scores is not None:
        s = pl.col("score") if rules.higher_is_better else -pl.col("score")
        floors = dict(
            scores.filter(pl.col("eligible") & pl.col("score").is_not_null())
            .group_by(BY)
            .agg(s.min())
            .iter_rows()
        )
    if rules.scheme in COVARIANCE_SCHEMES and history is None:
        raise WeightingInputError(f"weighting {rules.scheme!r} needs curated.prices history")
    strategy = weights["strategy"][0]
    out, report, previous, sector_of = [], [], {}, {}
    for day, day_value, names, own in _by_date(frame.sort(BY, "rank")):
        sector_of.update((t, sector) for t, (sector, _, _) in own.items())
        tickers, raw, dropped, shrink = _raw_weights(day, rules, floors.get(day_value), history)
        if not tickers:  # nothing measurable: keep the equal weights, say so
            tickers, raw = names, np.ones(day.height)
        target = dict(zip(tickers, cap_weights(raw, rules.max_weight).tolist(), strict=True))
        final, turnover, bound = limit_turnover(previous, target, rules.turnover_limit)
        previous = final
        sectors: dict[str | None, float] = {}
        for ticker, w in final.items():
            sector = sector_of[ticker]
            sectors[sector] = sectors.get(sector, 0.0) + w
            _, score_value, rank_value = own.get(ticker, (None, None, None))
            out.append((strategy, day_value, ticker, sector, w, score_value, rank_value))
        report.append(
            (
                strategy,
                day_value,
                rules.scheme,
                len(final),
                max(final.values()),
                max(sectors.values()),
                turnover,
                bound,
                shrink,
                ",".join(dropped),
            )
        )
    schema = dict(weights.schema)
    result = pl.DataFrame(out, schema=list(schema.items()), orient="row").sort(BY, "rank")
    return result, pl.DataFrame(report, schema=REPORT_SCHEMA, orient="row")


AUDIT_SCHEMA: dict[str, pl.DataType] = {
    "rebalance_date": pl.Date(),
    "tickers": pl.Int64(),
    "max_abs_difference": pl.Float64(),
    "matches": pl.Boolean(),
}


def audit_covariance(
    prices: pl.DataFrame, selections: pl.DataFrame, rules: WeightingRules, dates: list[date]
) -> pl.DataFrame:
    """Lookahead audit of the covariance: full price history vs prices truncated before D.

    ``selections``: rebalance_date, ticker (the names weighted on each date). For each of
    ``dates`` the covariance the weights used (from all of ``prices``) must equal, exactly, the
    one computed from ``prices`` with ``date < D`` only; a difference would mean a price of D or
    later reached it. Returns one ``AUDIT_SCHEMA`` row per date.
    """
    full = PriceHistory(prices)
    rows = []
    for d in dates:
        tickers = selections.filter(pl.col(BY) == d)["ticker"].sort().to_list()
        if not tickers:
            continue
        seen = covariance_before(full, d, tickers, rules)
        cut = covariance_before(PriceHistory(prices.filter(pl.col("date") < d)), d, tickers, rules)
        same_names = seen[1] == cut[1]
        diff = float(np.abs(seen[0] - cut[0]).max()) if same_names and seen[0].size else 0.0
        match = same_names and np.array_equal(seen[0], cut[0])
        rows.append((d, len(tickers), diff if same_names else None, bool(match)))
    return pl.DataFrame(rows, schema=AUDIT_SCHEMA, orient="row")
