"""The dataset version folds table fingerprints into one id."""

import hashlib

from quant_pipeline.core.data.dataset_version import dataset_version


def test_the_version_is_sha256_of_the_sorted_fingerprints_json():
    prints = {
        "curated.securities": {"rows": 2, "hash": "7"},
        "curated.prices": {"hash": "123", "rows": 3},
    }
    text = '{"curated.prices":{"hash":"123","rows":3},"curated.securities":{"hash":"7","rows":2}}'
    assert dataset_version(prints) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert dataset_version(dict(reversed(prints.items()))) == dataset_version(prints)


def test_a_changed_table_changes_the_version_and_no_table_has_none():
    base = {"curated.prices": {"rows": 3, "hash": "123"}}
    assert dataset_version(base) != dataset_version({"curated.prices": {"rows": 3, "hash": "124"}})
    assert dataset_version({}) is None


def test_a_fingerprint_is_sha256_of_the_groups_sorted_csv_and_ignores_row_order():
    import polars as pl

    from quant_pipeline.core.data.dataset_version import fingerprints

    frame = pl.DataFrame({"s": ["a", "b", "a"], "x": [2, 5, 1], "y": [0.5, 1.0, 0.25]})
    got = dict(fingerprints(frame, "s", ("x", "y")).iter_rows())
    assert got["a"] == hashlib.sha256(b"x,y\n1,0.25\n2,0.5\n").hexdigest()[:16]
    assert got["b"] == hashlib.sha256(b"x,y\n5,1.0\n").hexdigest()[:16]
    assert dict(fingerprints(frame.reverse(), "s", ("x", "y")).iter_rows()) == got
    moved = frame.with_columns(y=pl.Series([0.5, 1.0, 0.2500001]))
    assert dict(fingerprints(moved, "s", ("x", "y")).iter_rows())["a"] != got["a"]
