"""Which keys an incremental step keeps, recomputes or drops (core.data.fingerprints)."""

from datetime import date

import polars as pl

from quant_pipeline.core.data.fingerprints import (
    CHANGED,
    DROPPED,
    FORCED,
    KEPT,
    NEW,
    digest,
    hashes_before,
    plan_reuse,
)

KEYS = ("strategy", "rebalance_date")
D1, D2, D3 = date(2024, 1, 2), date(2024, 2, 1), date(2024, 3, 1)


def _digests(rows: list[tuple[str, date, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"strategy": pl.String, "rebalance_date": pl.Date, "digest": pl.String},
        orient="row",
    )


def test_plan_splits_keys_by_digest_and_counts_the_reasons() -> None:
    stored = _digests([("a", D1, "x"), ("a", D2, "y"), ("b", D1, "z")])
    current = _digests([("a", D1, "x"), ("a", D2, "CHANGED"), ("a", D3, "new")])
    reuse = plan_reuse(current, stored, KEYS)
    assert reuse.kept.rows() == [("a", D1)]
    assert sorted(reuse.computed.rows()) == [("a", D2), ("a", D3)]
    assert reuse.dropped.rows() == [("b", D1)]
    assert reuse.reasons == {KEPT: 1, CHANGED: 1, NEW: 1, DROPPED: 1}
    assert sorted(reuse.replaced.rows()) == [("a", D2), ("a", D3), ("b", D1)]
    assert reuse.computed_values("rebalance_date") == [D2, D3]


def test_a_restricted_run_drops_only_its_own_keys() -> None:
    stored = _digests([("a", D1, "x"), ("b", D1, "z")])
    current = _digests([("a", D1, "x")])
    reuse = plan_reuse(current, stored, KEYS, owned=pl.col("strategy") == "a")
    assert reuse.dropped.is_empty()
    assert reuse.reasons == {KEPT: 1}


def test_reuse_off_or_nothing_stored_computes_everything() -> None:
    stored = _digests([("a", D1, "x")])
    current = _digests([("a", D1, "x"), ("a", D2, "y")])
    assert plan_reuse(current, stored, KEYS, enabled=False).reasons == {FORCED: 2}
    assert plan_reuse(current, None, KEYS).reasons == {NEW: 2}


def test_running_hash_lookup_is_strictly_before_a_date() -> None:
    cumulative = pl.DataFrame(
        {"date": [D1, D2], "rows": [3, 5], "hash": ["11", "29"]},
        schema={"date": pl.Date, "rows": pl.Int64, "hash": pl.String},
    )
    assert hashes_before(cumulative, [D1, D2, D3]) == {D1: "0:", D2: "3:11", D3: "5:29"}


def test_digest_is_stable_and_sensitive() -> None:
    assert digest("a", 1, D1) == digest("a", 1, D1)
    assert digest("a", 1, D1) != digest("a", 2, D1)
    assert len(digest("a")) == 32
