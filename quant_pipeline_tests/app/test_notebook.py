"""The notebook file: valid nbformat 4, wired to the warehouse given, read-only queries only."""

import nbformat
import pytest

from quant_pipeline.app.notebook import write_notebook


def test_a_folder_gets_a_valid_notebook_that_names_the_warehouse_strategy_and_factor(tmp_path):
    path = write_notebook(tmp_path / "out", tmp_path / "quant.duckdb", "momentum_12_1", "roe")
    assert path == tmp_path / "out" / "quant_pipeline.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert repr(str((tmp_path / "quant.duckdb").resolve())) in code
    assert "STRATEGY = 'momentum_12_1'" in code
    assert "FACTOR = 'roe'" in code
    # Every query goes through q(), which opens read-only and closes at once.
    assert code.count("duckdb.connect(") == 1
    assert "read_only=True" in code
    assert not list(tmp_path.glob("out/.*.tmp"))  # no temporary file left behind


def test_a_file_name_must_end_in_ipynb(tmp_path):
    with pytest.raises(ValueError, match=r"notes\.txt: a notebook file name ends in \.ipynb"):
        write_notebook(tmp_path / "notes.txt", tmp_path / "quant.duckdb")
