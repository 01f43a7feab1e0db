"""Materialization metadata that makes the Dagster UI tell the story of a table."""

import dagster as dg
import polars as pl

_PREVIEW_ROWS = 10


def markdown_table(frame: pl.DataFrame, max_rows: int = _PREVIEW_ROWS) -> str:
    """A markdown table of the first rows of ``frame`` (floats rounded for reading)."""
    head = frame.head(max_rows).with_columns(pl.selectors.float().round(6))
    if head.width == 0:
        return "_(no columns)_"
    header = "| " + " | ".join(head.columns) + " |"
    rule = "|" + "---|" * head.width
    rows = [
        "| " + " | ".join("" if v is None else str(v) for v in row) + " |"
        for row in head.iter_rows()
    ]
    return "\n".join([header, rule, *rows])


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )


def table_metadata(table: str, frame: pl.DataFrame, **extra: object) -> dict[str, object]:
    """Row count, column schema, table name and a preview for a table the asset just wrote."""
    meta: dict[str, object] = {
        "dagster/row_count": frame.height,
        "dagster/table_name": table,
        "dagster/column_schema": column_schema(frame),
        "preview": dg.MetadataValue.md(markdown_table(frame)),
    }
    meta.update(extra)
    return meta
