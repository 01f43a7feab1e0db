"""The CLI's failure summary names the root cause in its first line (issue 13, item 10 tail)."""

from __future__ import annotations

from datetime import date

from quant_pipeline.app import cli
from quant_pipeline_tests.defs import test_incremental_refresh as ti


class Crashing(ti.FakeSource):
    def prices(self, request):
        raise KeyError("adjclose")


def test_a_failed_run_prints_the_exception_the_step_raised_not_dagsters_wrapper(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("QUANT_PIPELINE_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    ti._SOURCES["fake"] = Crashing(end=date(2024, 1, 12))
    code = cli.main(
        ["run", "--warehouse", str(tmp_path / "quant.duckdb")],
        resources={"market": ti.FakeMarket(source="demo", key="fake")},
    )
    summary = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert code == 1
    assert summary == ["step raw__prices failed: KeyError: 'adjclose'"]


def test_a_failure_description_keeps_its_lines_below_the_first():
    class Info:
        cls_name = "DagsterExecutionStepExecutionError"
        message = "Error occurred while executing op"
        context = None

        class cause:  # noqa: N801 - stands in for dagster's SerializableErrorInfo
            cls_name = "HoldingsError"
            message = "holdings file 'a.csv' is not usable: 2 bad rows\n  line 2: x\n  line 3: y"
            cause = None
            context = None

    assert cli.root_cause(Info) == (
        "HoldingsError: holdings file 'a.csv' is not usable: 2 bad rows\n      line 2: x\n"
        "      line 3: y"
    )
