"""What a trade costs: broker commission and slippage on the execution price.

Pure: numbers and polars expressions in, numbers and expressions out.

The default :class:`CommissionModel` follows Interactive Brokers' *fixed* US-stock pricing:
$0.005 per share, at least $1.00 per order, at most 1% of the trade value. As at IB, the cap
wins over the minimum: an order worth $50 pays at most $0.50 even though the minimum is $1.
An optional ``bps`` charge (basis points of trade value) is added before the bounds, for brokers
that price a percentage; ``slippage_bps`` moves the execution price against the trader (a buy
pays ``price * (1 + s)``, a sell receives ``price * (1 - s)`` with ``s = slippage_bps / 1e4``).

    fee(q, p) = 0                                            if q == 0
              = min(max(per_share*|q| + bps/1e4*|q|*p, minimum), maximum_pct*|q|*p)   otherwise
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl


class TradingCostError(ValueError):
    """A commission model was given a parameter it cannot use (negative, not finite, ...)."""


@dataclass(frozen=True)
class CommissionModel:
    """Per-order commission and slippage.

    ``per_share``: dollars per share traded. ``minimum``: dollars per non-empty order.
    ``maximum_pct``: cap as a fraction of trade value (0.01 = 1%; ``math.inf`` for no cap).
    ``bps``: extra charge in basis points of trade value. ``slippage_bps``: execution price
    moved against the trader, in basis points (see :meth:`execution_price`).
    """

    per_share: float = 0.005
    minimum: float = 1.0
    maximum_pct: float = 0.01
    bps: float = 0.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        for name in ("per_share", "minimum", "bps", "slippage_bps"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise TradingCostError(
                    f"CommissionModel.{name} must be a finite number >= 0, got {value!r}"
                )
        if not isinstance(self.maximum_pct, int | float) or not self.maximum_pct >= 0:
            raise TradingCostError(
                f"CommissionModel.maximum_pct must be >= 0 (math.inf for no cap), "
                f"got {self.maximum_pct!r}"
            )
        if self.slippage_bps >= 1e4:
            raise TradingCostError(
                f"CommissionModel.slippage_bps must be < 10000 (100%), got {self.slippage_bps!r}"
            )

    @classmethod
    def free(cls) -> CommissionModel:
        """No commission and no slippage (a zero-fee broker, or for checking the arithmetic)."""
        return cls(per_share=0.0, minimum=0.0, maximum_pct=math.inf, bps=0.0, slippage_bps=0.0)

    @property
    def slippage(self) -> float:
        """Slippage as a fraction of price (``slippage_bps / 1e4``)."""
        return self.slippage_bps / 1e4

    def fee(self, shares: float, price: float) -> float:
        """Commission in dollars for one order of ``shares`` (sign ignored) at ``price``."""
        return float(self.fees(np.asarray([shares], float), np.asarray([price], float))[0])

    def fees(self, shares: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`fee`: one commission per element (numpy arrays, broadcastable)."""
        qty = np.abs(np.asarray(shares, dtype=float))
        value = qty * np.asarray(price, dtype=float)
        raw = self.per_share * qty + self.bps / 1e4 * value
        with np.errstate(invalid="ignore"):  # inf * 0 when there is no cap and no trade
            cap = np.where(value > 0, self.maximum_pct * value, 0.0)
        bounded = np.minimum(np.maximum(raw, self.minimum), cap)
        return np.where(qty > 0, bounded, 0.0)

    def fee_expr(self, shares_col: str | pl.Expr, price_col: str | pl.Expr) -> pl.Expr:
        """:meth:`fee` as a polars expression over a shares column and a price column.

        Null shares or price give a null fee. The expression is named ``fee``.
        """
        shares = pl.col(shares_col) if isinstance(shares_col, str) else shares_col
        price = pl.col(price_col) if isinstance(price_col, str) else price_col
        qty = shares.abs()
        value = qty * price
        raw = self.per_share * qty + self.bps / 1e4 * value
        bounded = pl.max_horizontal(raw, pl.lit(self.minimum))
        if math.isfinite(self.maximum_pct):
            bounded = pl.min_horizontal(bounded, self.maximum_pct * value)
        return (
            pl.when(qty.is_null() | price.is_null())
            .then(None)
            .when(qty == 0)
            .then(0.0)
            .otherwise(bounded)
            .cast(pl.Float64)
            .alias("fee")
        )

    def execution_price(self, price: float, shares: float) -> float:
        """Price paid (``shares > 0``) or received (``shares < 0``) after slippage."""
        return price * (1.0 + self.slippage * float(np.sign(shares)))

    def execution_price_expr(self, price_col: str | pl.Expr, shares_col: str | pl.Expr) -> pl.Expr:
        """:meth:`execution_price` as a polars expression, named ``execution_price``."""
        shares = pl.col(shares_col) if isinstance(shares_col, str) else shares_col
        price = pl.col(price_col) if isinstance(price_col, str) else price_col
        return (price * (1.0 + self.slippage * shares.sign())).alias("execution_price")
