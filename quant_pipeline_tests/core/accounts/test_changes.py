"""The packet's changes section on tiny hand-made books."""

import polars as pl
import pytest

from quant_pipeline.core.accounts.changes import book_frame, format_changes, packet_changes

PREVIOUS = book_frame(
    [
        {"ticker": "A", "sector": "Energy", "weight": 0.25, "score": 2.0, "rank": 1},
        {"ticker": "B", "sector": "Energy", "weight": 0.25, "score": 1.5, "rank": 2},
        {"ticker": "C", "sector": "Materials", "weight": 0.25, "score": 1.0, "rank": 3},
        {"ticker": "D", "sector": None, "weight": 0.25, "score": 0.5, "rank": 4},
    ]
)
CURRENT = book_frame(
    [
        {"ticker": "A", "sector": "Energy", "weight": 0.40, "score": 2.2, "rank": 1},
        {"ticker": "B", "sector": "Energy", "weight": 0.255, "score": 1.4, "rank": 3},
        {"ticker": "C", "sector": "Materials", "weight": 0.20, "score": 0.9, "rank": 4},
        {"ticker": "E", "sector": "Utilities", "weight": 0.145, "score": 1.8, "rank": 2},
        {"ticker": "F", "sector": "Utilities", "weight": 0.0, "score": 0.1, "rank": 9},
    ]
)


def test_added_removed_and_weight_moves_above_the_threshold():
    changes = packet_changes(CURRENT, PREVIOUS, "p@2024-01-02", threshold=0.01)
    assert changes["previous_packet_id"] == "p@2024-01-02"
    # E is new (F has weight 0: not held); D left with the score and rank it had
    assert [(r["ticker"], r["score"], r["rank"]) for r in changes["added"]] == [("E", 1.8, 2)]
    assert [(r["ticker"], r["weight"], r["rank"]) for r in changes["removed"]] == [("D", 0.25, 4)]
    # A +0.15 and C -0.05 move more than 0.01; B +0.005 does not
    moved = [(r["ticker"], r["previous_weight"], r["weight"]) for r in changes["weight_changes"]]
    assert moved == [("A", 0.25, 0.40), ("C", 0.25, 0.20)]
    assert changes["weight_changes"][0]["change"] == pytest.approx(0.15)
    assert changes["weight_changes"][1]["previous_rank"] == 3
    assert (changes["n_added"], changes["n_removed"], changes["n_kept"]) == (1, 1, 3)


def test_the_first_packet_has_every_name_added_and_no_previous_id():
    changes = packet_changes(CURRENT, None, None, threshold=0.01)
    assert changes["previous_packet_id"] is None
    assert [r["ticker"] for r in changes["added"]] == ["A", "E", "B", "C"]  # by rank
    assert changes["removed"] == [] and changes["weight_changes"] == []
    assert format_changes(changes) == ["changes: first packet of this portfolio (4 names)"]


def test_the_printed_changes_name_each_move():
    lines = format_changes(packet_changes(CURRENT, PREVIOUS, "p@2024-01-02", threshold=0.1))
    assert lines == [
        "changes since p@2024-01-02: 1 added, 1 removed, 3 kept (1 weights moved more than 10.00%)",
        "  added E (Utilities): weight 14.50%, score 1.8, rank 2",
        "  removed D (unknown sector): weight 25.00%, score 0.5, rank 4",
        "  weight A: 25.00% -> 40.00% (+15.00%)",
    ]


def test_a_book_without_scores_gets_null_scores_and_a_negative_threshold_is_refused():
    book = book_frame(pl.DataFrame({"ticker": ["A"], "weight": [1.0]}))
    assert book.row(0) == ("A", None, 1.0, None, None)
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        packet_changes(book, None, None, threshold=-0.1)
