"""Turn a strategy's target weights into share orders for one account.

Pure: polars frames in, an :class:`OrdersResult` out. No dates are looked at here: the caller
passes the latest target weights and the latest prices (the timing rule is the caller's: orders
for a rebalance on D use the weights computed for D and are priced at the latest close).

How the orders are built (see ``docs/orders.md`` for a worked example):

1. **Account value** ``T`` = market value of the holdings (shares x price) + ``cash`` + ``capital``
   (new money). Without holdings, ``T = capital + cash``. The *sleeve* ``S`` the strategy manages
   is ``T`` minus the value of holdings outside the strategy that are kept
   (``sell_unlisted=False``); with the default every non-strategy holding is sold and ``S = T``.
2. **Cost reserve.** Commission and slippage of the trades are estimated and set aside, so the
   target value of ticker *i* is ``w_i * (S - reserve)``.
3. **Target shares** are rounded *down*, never up into overspending: whole shares by default
   (the trade is a whole number of shares; a full exit sells every share, fractions included),
   or multiples of 1e-6 share with ``fractional=True``.
4. **Dust.** A trade worth less than ``min_trade_value`` is not made (side ``HOLD``) and is listed
   in ``skipped``.
5. **Sells first**, then buys funded by the sell proceeds plus the cash, in descending target
   weight (ties by ticker). A buy that no longer fits is cut to the shares the cash left can pay,
   fees included (listed in ``trimmed``), or dropped (listed in ``skipped``).
6. **Leftover cash** (whole shares only): while cash remains, buy one more share of the strategy
   name furthest below its target value (largest dollar shortfall; ties by ticker) among those
   that are below target, not being sold, and affordable with the commission increase. Each name
   ends at most about one share above its target, so the result stays deterministic.

``cash_after`` is never negative (a float shortfall below 1e-9 of the account is rounded to 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from quant_pipeline.core.accounts.holdings import MAX_AMOUNT, MAX_SHARES
from quant_pipeline.core.backtest.costs import CommissionModel
from quant_pipeline.core.data.frames import require_columns

FRACTION_UNIT = 1e-6  # smallest fractional share traded with fractional=True
# Rounds of bulk buying before the one-share loop; each round at least halves what is left to
# buy (64 halvings exhaust any float share count).
_BULK_ROUNDS = 64
# An account worth more than this ($1e15, ten times the world's listed equity) is a typo; below
# it share counts and dollar sums stay exact enough in float64 for whole-share rounding.
MAX_ACCOUNT = 1e15

ORDERS_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "sector": pl.String,
    "price": pl.Float64,
    "current_shares": pl.Float64,
    "target_shares": pl.Float64,
    "shares_to_trade": pl.Float64,
    "side": pl.String,
    "trade_value": pl.Float64,
    "fees": pl.Float64,
    "target_weight": pl.Float64,
    "current_weight": pl.Float64,
    "resulting_weight": pl.Float64,
}

SIDES: tuple[str, ...] = ("BUY", "SELL", "HOLD")


class OrdersError(ValueError):
    """The inputs cannot produce orders (missing prices, bad weights, no money, ...)."""


@dataclass(frozen=True)
class OrdersResult:
    """The order table and the account summary.

    ``orders``: one row per ticker in the strategy or the holdings (schema :data:`ORDERS_SCHEMA`,
    sorted by ticker). ``shares_to_trade`` and ``trade_value`` are signed (+ buy, - sell);
    ``trade_value`` is shares x execution price (after slippage) and excludes ``fees``.
    ``target_weight`` is the weight wanted in the whole account after trading (the strategy
    weight, scaled by the strategy's share of the account when outside holdings are kept; 0 for
    holdings sold because they are outside the strategy; the current weight for those kept).
    ``current_weight`` is against ``portfolio_value``, ``resulting_weight`` against
    ``portfolio_value_after``.

    ``portfolio_value``: account value before trading (holdings at ``price`` + cash + capital).
    ``portfolio_value_after``: holdings after trading at ``price`` + ``cash_after`` (lower by the
    fees and slippage). ``cash_before`` = cash + capital. ``skipped``: ``(ticker, reason)`` for
    trades not made; ``trimmed``: ``(ticker, reason)`` for buys cut for lack of cash.
    """

    orders: pl.DataFrame
    portfolio_value: float
    portfolio_value_after: float
    cash_before: float
    cash_after: float
    total_fees: float
    slippage_cost: float
    n_buys: int
    n_sells: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    trimmed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """The scalar results as a plain dict (for metadata, JSON or a printed footer)."""
        return {
            "portfolio_value": self.portfolio_value,
            "portfolio_value_after": self.portfolio_value_after,
            "cash_before": self.cash_before,
            "cash_after": self.cash_after,
            "total_fees": self.total_fees,
            "slippage_cost": self.slippage_cost,
            "n_buys": self.n_buys,
            "n_sells": self.n_sells,
            "skipped": [list(s) for s in self.skipped],
            "trimmed": [list(t) for t in self.trimmed],
        }


def build_orders(
    target_weights: pl.DataFrame,
    prices: pl.DataFrame,
    capital: float | None = None,
    holdings: pl.DataFrame | None = None,
    cash: float = 0.0,
    fractional: bool = False,
    min_trade_value: float = 0.0,
    sell_unlisted: bool = True,
    commission: CommissionModel | None = None,
) -> OrdersResult:
    """Orders that move an account (``capital`` and/or ``holdings`` + ``cash``) to target weights.

    Frames expected:

    * ``target_weights``: ``ticker`` (unique), ``weight`` (>= 0, sum <= 1; the rest stays cash),
      optional ``sector``. The strategy's latest rebalance only; other columns are ignored.
    * ``prices``: ``ticker`` (unique), ``price`` (> 0): the latest close the caller trusts.
      Every ticker with a positive weight or a positive holding needs one, else
      :class:`OrdersError` lists them all (no price is guessed). A zero-weight, unheld ticker
      without a price is left out of the table and listed in ``skipped``.
    * ``holdings`` (optional): ``ticker`` (unique), ``shares`` (>= 0); e.g. from
      :func:`quant_pipeline.core.accounts.holdings.parse_holdings`. Other columns are ignored.

    ``capital``: new money to invest (required when there are no holdings). ``cash``: cash
    already in the account. ``commission``: default :class:`CommissionModel` (IB-like fixed);
    ``CommissionModel.free()`` for none. The algorithm is described in the module docstring.
    """
    commission = CommissionModel() if commission is None else commission
    _check_amounts(capital, holdings, cash, min_trade_value)
    book, skipped = _priced_book(
        _checked_targets(target_weights), _checked_holdings(holdings), _checked_prices(prices)
    )
    tickers = book["ticker"].to_list()
    price = book["price"].to_numpy().astype(float)
    current = book["current_shares"].to_numpy().astype(float)
    weight = book["weight"].to_numpy().astype(float)
    in_strategy = book["in_strategy"].to_numpy().astype(bool)
    kept = ~in_strategy & (not sell_unlisted)

    cash_before = float(cash) + float(capital or 0.0)
    total = float(np.sum(current * price)) + cash_before
    if total <= 0:
        raise OrdersError("the account is worth 0 (no capital, cash or priced holdings)")
    if not math.isfinite(total) or total > MAX_ACCOUNT:
        raise OrdersError(
            f"the account would be worth ${total:g} (holdings x prices + cash), more than "
            f"${MAX_ACCOUNT:g}: check the share counts and prices"
        )
    sleeve = total - float(np.sum(current * price, where=kept))
    unit = FRACTION_UNIT if fractional else 1.0
    plan = _Planner(weight, price, current, kept, fractional, unit, min_trade_value, commission)
    intended_raw, intended = plan.with_cost_reserve(sleeve)
    skipped += _dust_skips(tickers, price, intended_raw, intended, min_trade_value)

    trade = intended.copy()
    tol = 1e-9 * max(total, 1.0)
    remaining = _fund_buys(trade, plan, cash_before, tol)
    if not fractional:
        remaining = _spend_leftover(trade, plan, in_strategy, sleeve, remaining, tol)
    unaffordable, trimmed = _shortfalls(tickers, price, intended, trade)
    return _result(
        book,
        trade,
        price,
        current,
        weight,
        in_strategy,
        kept,
        total,
        sleeve,
        cash_before,
        commission,
        skipped + unaffordable,
        trimmed,
    )


def _check_amounts(
    capital: float | None, holdings: pl.DataFrame | None, cash: float, min_trade_value: float
) -> None:
    _check_amount("cash", cash)
    _check_amount("min_trade_value", min_trade_value)
    if capital is not None:
        _check_amount("capital", capital)
    if capital is None and holdings is None:
        raise OrdersError("build_orders needs capital, holdings or both; got neither")


def _priced_book(
    targets: pl.DataFrame, held: pl.DataFrame, quotes: pl.DataFrame
) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """Targets and holdings side by side with their prices, sorted by ticker, and the skipped
    zero-weight unheld tickers without a price; :class:`OrdersError` when a ticker that must
    trade has no price."""
    book = (
        targets.join(held, on="ticker", how="full", coalesce=True)
        .with_columns(
            pl.col("weight").is_not_null().alias("in_strategy"),
            pl.col("weight").fill_null(0.0),
            pl.col("current_shares").fill_null(0.0),
        )
        .join(quotes, on="ticker", how="left")
        .sort("ticker")
    )
    needed = (pl.col("weight") > 0) | (pl.col("current_shares") > 0)
    unpriced = book.filter(needed & pl.col("price").is_null())
    if unpriced.height:
        listed = ", ".join(
            f"{t} ({'target weight' if w > 0 else 'held'})"
            for t, w in unpriced.select("ticker", "weight").iter_rows()
        )
        raise OrdersError(f"no price for {unpriced.height} ticker(s) that must trade: {listed}")
    skipped: list[tuple[str, str]] = [
        (t, "no price (zero target weight, not held): left out")
        for t in book.filter(pl.col("price").is_null())["ticker"]
    ]
    return book.filter(pl.col("price").is_not_null()), skipped


@dataclass(frozen=True)
class _Planner:
    """Target trades per ticker for an invested amount (steps 2-4 of the module docstring)."""

    weight: np.ndarray
    price: np.ndarray
    current: np.ndarray
    kept: np.ndarray
    fractional: bool
    unit: float
    min_trade_value: float
    commission: CommissionModel

    def plan(self, invest: float) -> tuple[np.ndarray, np.ndarray]:
        """(trade before dust filter, trade after it) when the strategy invests ``invest``."""
        price, current, unit = self.price, self.current, self.unit
        ideal = self.weight * max(invest, 0.0) / price
        if self.fractional:
            target = np.floor(ideal / unit * (1 + 1e-12) + 1e-9) * unit
        else:  # whole-share trades, even from a fractional holding; a full exit sells it all
            target = np.maximum(current + np.floor(ideal - current + 1e-9), 0.0)
        target = np.where(self.kept, current, target)
        trade = target - current
        dust = (trade != 0) & (np.abs(trade) * price < self.min_trade_value)
        return trade, np.where(dust, 0.0, trade)

    def costs(self, trade: np.ndarray) -> float:
        price, commission = self.price, self.commission
        return float(
            np.sum(commission.fees(trade, price))
            + np.sum(np.abs(trade) * price) * commission.slippage
        )

    def with_cost_reserve(self, sleeve: float) -> tuple[np.ndarray, np.ndarray]:
        """The plan for the sleeve minus its trading costs, re-estimated once from the reduced
        plan; the larger estimate is kept so that buys are rarely cut later for lack of cash."""
        reserve = self.costs(self.plan(sleeve)[1])
        reserve = max(reserve, self.costs(self.plan(sleeve - reserve)[1]))
        return self.plan(sleeve - reserve)


def _dust_skips(
    tickers: list[str],
    price: np.ndarray,
    intended_raw: np.ndarray,
    intended: np.ndarray,
    min_trade_value: float,
) -> list[tuple[str, str]]:
    """The trades not made because they are worth less than ``min_trade_value``."""
    return [
        (
            tickers[i],
            f"below minimum trade value: {'buy' if intended_raw[i] > 0 else 'sell'} "
            f"{_fmt_shares(abs(intended_raw[i]))} shares = "
            f"${abs(intended_raw[i]) * price[i]:,.2f} < ${min_trade_value:,.2f}",
        )
        for i in np.flatnonzero((intended_raw != 0) & (intended == 0))
    ]


def _fund_buys(trade: np.ndarray, plan: _Planner, cash_before: float, tol: float) -> float:
    """Sells first, then buys in descending target weight (ties by ticker) from the proceeds
    plus cash; a buy that no longer fits is cut or dropped (``trade`` is changed in place).
    Returns the cash left."""
    price, commission, min_trade_value = plan.price, plan.commission, plan.min_trade_value
    slip = commission.slippage
    sells = trade < 0
    available = cash_before + float(
        np.sum(-trade[sells] * price[sells] * (1 - slip))
        - np.sum(commission.fees(trade[sells], price[sells]))
    )
    buy_order = sorted(np.flatnonzero(trade > 0), key=lambda i: (-plan.weight[i], i))
    buy_cost = trade[buy_order] * price[buy_order] * (1 + slip) + commission.fees(
        trade[buy_order], price[buy_order]
    )
    fits = np.cumsum(buy_cost) <= available + tol
    first_short = int(np.argmin(fits)) if not fits.all() else len(buy_order)
    remaining = available - float(np.sum(buy_cost[:first_short]))
    for i in buy_order[first_short:]:
        cost = trade[i] * price[i] * (1 + slip) + commission.fee(trade[i], price[i])
        if cost > remaining + tol:
            trade[i] = _affordable(trade[i], price[i], remaining + tol, plan.unit, commission)
            if trade[i] * price[i] < min_trade_value:
                trade[i] = 0.0
            cost = trade[i] * price[i] * (1 + slip) + commission.fee(trade[i], price[i])
        remaining -= cost
    return remaining


def _shortfalls(
    tickers: list[str], price: np.ndarray, intended: np.ndarray, trade: np.ndarray
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(buys dropped because the cash ran out, buys cut to fewer shares)."""
    skipped: list[tuple[str, str]] = []
    trimmed: list[tuple[str, str]] = []
    for i in np.flatnonzero(intended > 0):
        if trade[i] == 0:
            skipped.append(
                (
                    tickers[i],
                    f"cannot afford: buy {_fmt_shares(intended[i])} shares "
                    f"(${intended[i] * price[i]:,.2f}) after sells and cash ran out",
                )
            )
        elif trade[i] < intended[i]:
            trimmed.append(
                (
                    tickers[i],
                    f"cut from {_fmt_shares(intended[i])} to {_fmt_shares(trade[i])} shares: "
                    "not enough cash",
                )
            )
    return skipped, trimmed


def _check_amount(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise OrdersError(f"{name} must be a finite number >= 0, got {value!r}")
    if value > MAX_AMOUNT:
        raise OrdersError(f"{name} must be at most ${MAX_AMOUNT:g}, got {value:g}")


def _duplicates(frame: pl.DataFrame, what: str) -> None:
    dupes = frame.filter(pl.len().over("ticker") > 1)["ticker"].unique(maintain_order=True)
    if dupes.len():
        raise OrdersError(f"{what} frame has duplicate tickers: {', '.join(dupes.to_list())}")


def _checked_targets(frame: pl.DataFrame) -> pl.DataFrame:
    require_columns(frame, ("ticker", "weight"), "target_weights", OrdersError)
    sector = pl.col("sector") if "sector" in frame.columns else pl.lit(None)
    out = frame.select(
        pl.col("ticker").cast(pl.String),
        pl.col("weight").cast(pl.Float64),
        sector.cast(pl.String).alias("sector"),
    )
    if out["ticker"].null_count():
        raise OrdersError("target_weights frame has rows with a null ticker")
    _duplicates(out, "target_weights")
    bad = out.filter(
        pl.col("weight").is_null() | pl.col("weight").is_nan() | (pl.col("weight") < 0)
    )
    if bad.height:
        listed = ", ".join(f"{t}={w}" for t, w in bad.select("ticker", "weight").iter_rows())
        raise OrdersError(f"target_weights must be >= 0 and not null/NaN (long only): {listed}")
    total = float(out["weight"].sum())
    if total > 1 + 1e-6 or math.isinf(total):
        raise OrdersError(f"target weights sum to {total:.6f} > 1 (no leverage)")
    return out


def _checked_holdings(frame: pl.DataFrame | None) -> pl.DataFrame:
    if frame is None:
        return pl.DataFrame(schema={"ticker": pl.String, "current_shares": pl.Float64})
    require_columns(frame, ("ticker", "shares"), "holdings", OrdersError)
    out = frame.select(
        pl.col("ticker").cast(pl.String), pl.col("shares").cast(pl.Float64).alias("current_shares")
    )
    if out["ticker"].null_count():
        raise OrdersError("holdings frame has rows with a null ticker")
    _duplicates(out, "holdings")
    shares = pl.col("current_shares")
    bad = out.filter(shares.is_null() | ~shares.is_finite() | (shares < 0))
    if bad.height:
        listed = ", ".join(f"{t}={s}" for t, s in bad.head(20).iter_rows())
        raise OrdersError(f"holdings shares must be finite and >= 0: {listed}")
    huge = out.filter(shares > MAX_SHARES)
    if huge.height:
        listed = ", ".join(f"{t}={s:g}" for t, s in huge.head(20).iter_rows())
        raise OrdersError(f"holdings shares must be at most {MAX_SHARES:g}: {listed}")
    return out


def _checked_prices(frame: pl.DataFrame) -> pl.DataFrame:
    require_columns(frame, ("ticker", "price"), "prices", OrdersError)
    out = frame.select(pl.col("ticker").cast(pl.String), pl.col("price").cast(pl.Float64))
    out = out.filter(pl.col("ticker").is_not_null())
    _duplicates(out, "prices")
    # An unusable price is treated as no price: the caller's check then names the ticker.
    usable = pl.col("price").is_finite() & (pl.col("price") > 0)
    return out.with_columns(pl.when(usable).then(pl.col("price")).alias("price"))


def _fmt_shares(shares: float) -> str:
    return f"{shares:,.6f}".rstrip("0").rstrip(".")


def _affordable(
    shares: float, price: float, budget: float, unit: float, commission: CommissionModel
) -> float:
    """Largest multiple of ``unit`` <= ``shares`` whose cost with fees fits in ``budget``."""

    def cost(units: int) -> float:
        qty = units * unit
        return qty * price * (1 + commission.slippage) + commission.fee(qty, price)

    lo, hi = 0, int(math.floor(shares / unit + 1e-9))
    while lo < hi:  # cost is non-decreasing in the quantity, so bisect
        mid = (lo + hi + 1) // 2
        if cost(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo * unit


def _bulk_leftover(
    trade: np.ndarray,
    plan: _Planner,
    eligible: np.ndarray,
    sleeve: float,
    remaining: float,
    tol: float,
) -> float:
    """Before the one-share loop: buy at once, for every eligible name still two or more shares
    below its target value, all but one of the shares it is short (halved until the cash
    allows). Afterwards each name is less than about two shares short or the cash is spent, so
    the one-share loop of :func:`_spend_leftover` runs about two iterations per name at most,
    whatever the account size (a $1e13 account made it run for minutes). Updates ``trade``."""
    current, price, weight, commission = plan.current, plan.price, plan.weight, plan.commission
    slip = commission.slippage
    for _ in range(_BULK_ROUNDS):
        spent = float(np.sum(commission.fees(trade, price)) + np.sum(np.abs(trade) * price) * slip)
        gap = weight * (sleeve - spent) - (current + trade) * price
        k = np.floor(gap / (price * (1 + slip))) - 1.0
        # the one-share loop's own conditions, so nothing is bought that it would not buy
        first_share_ok = (trade + 1) * price >= plan.min_trade_value
        k = np.where(eligible & (trade >= 0) & (k >= 1) & first_share_ok, k, 0.0)
        while k.any():
            cost = float(
                np.sum(k * price * (1 + slip))
                + np.sum(commission.fees(trade + k, price) - commission.fees(trade, price))
            )
            if cost <= remaining + tol:
                break
            k = np.floor(k / 2)
        if not k.any():
            return remaining
        trade += k
        remaining -= cost
    return remaining


def _spend_leftover(
    trade: np.ndarray,
    plan: _Planner,
    in_strategy: np.ndarray,
    sleeve: float,
    remaining: float,
    tol: float,
) -> float:
    """Buy single shares of the most underweight names while cash allows; updates ``trade``."""
    current, price, weight, commission = plan.current, plan.price, plan.weight, plan.commission
    min_trade_value = plan.min_trade_value
    slip = commission.slippage
    eligible = in_strategy & (weight > 0)
    remaining = _bulk_leftover(trade, plan, eligible, sleeve, remaining, tol)
    while True:
        spent_on_costs = float(
            np.sum(commission.fees(trade, price)) + np.sum(np.abs(trade) * price) * slip
        )
        gap = weight * (sleeve - spent_on_costs) - (current + trade) * price
        extra = (
            price * (1 + slip) + commission.fees(trade + 1, price) - commission.fees(trade, price)
        )
        ok = (
            eligible
            & (trade >= 0)
            & (gap > 0)
            & (extra <= remaining + tol)
            & ((trade + 1) * price >= min_trade_value)
        )
        if not ok.any():
            return remaining
        i = int(np.argmax(np.where(ok, gap, -np.inf)))  # first maximum: lowest ticker wins ties
        trade[i] += 1.0
        remaining -= float(extra[i])


def _result(
    book: pl.DataFrame,
    trade: np.ndarray,
    price: np.ndarray,
    current: np.ndarray,
    weight: np.ndarray,
    in_strategy: np.ndarray,
    kept: np.ndarray,
    total: float,
    sleeve: float,
    cash_before: float,
    commission: CommissionModel,
    skipped: list[tuple[str, str]],
    trimmed: list[tuple[str, str]],
) -> OrdersResult:
    after = current + trade
    exec_price = price * (1 + commission.slippage * np.sign(trade))
    trade_value = trade * exec_price
    fees = commission.fees(trade, price)
    total_fees = float(np.sum(fees))
    cash_after = cash_before - float(np.sum(trade_value)) - total_fees
    if cash_after < 0:
        if cash_after < -1e-9 * max(total, 1.0):
            raise OrdersError(f"internal error: orders would overspend by ${-cash_after:,.6f}")
        cash_after = 0.0
    value_after = float(np.sum(after * price)) + cash_after
    current_value = current * price
    target_weight = np.where(
        in_strategy, weight * sleeve / total, np.where(kept, current_value / total, 0.0)
    )
    resulting = after * price / value_after if value_after > 0 else np.zeros_like(after)
    side = np.where(trade > 0, "BUY", np.where(trade < 0, "SELL", "HOLD"))
    orders = pl.DataFrame(
        {
            "ticker": book["ticker"],
            "sector": book["sector"],
            "price": price,
            "current_shares": current,
            "target_shares": after,
            "shares_to_trade": trade,
            "side": side,
            "trade_value": trade_value,
            "fees": fees,
            "target_weight": target_weight,
            "current_weight": current_value / total,
            "resulting_weight": resulting,
        },
        schema=ORDERS_SCHEMA,
    )
    return OrdersResult(
        orders=orders,
        portfolio_value=total,
        portfolio_value_after=value_after,
        cash_before=cash_before,
        cash_after=cash_after,
        total_fees=total_fees,
        slippage_cost=float(np.sum(np.abs(trade) * price) * commission.slippage),
        n_buys=int(np.sum(trade > 0)),
        n_sells=int(np.sum(trade < 0)),
        skipped=skipped,
        trimmed=trimmed,
    )
