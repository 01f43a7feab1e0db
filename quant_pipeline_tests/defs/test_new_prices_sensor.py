"""new_prices_sensor: a refresh of curated prices requests one downstream rebuild, once."""

import dagster as dg

from quant_pipeline.definitions import defs
from quant_pipeline.defs.curated import downstream_refresh_job, new_prices_sensor


@dg.asset(key=["curated", "prices"])
def fake_prices() -> None:
    """Stands in for the real asset: only the materialization event matters here."""


@dg.asset(key=["factors", "values"], deps=[fake_prices])
def fake_values() -> None:
    """Stands in for the start of the chain."""


def _tick(instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return new_prices_sensor.evaluate_tick(context)


def test_a_refresh_that_only_curated_prices_requests_one_downstream_run():
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([fake_prices], instance=instance)
        tick = _tick(instance)
        assert [r.run_key for r in tick.run_requests] == [f"new_prices:{result.run_id}"]
        # the cursor moved past that event: the next tick asks for nothing
        again = _tick(instance, tick.cursor)
        assert again.run_requests == []
        assert "No new materialization" in again.skip_message


def test_a_run_that_rebuilt_the_chain_itself_is_skipped_with_the_reason():
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([fake_prices, fake_values], instance=instance)
        tick = _tick(instance)
        assert tick.run_requests == []
        assert result.run_id in tick.skip_message and "rebuilt the chain" in tick.skip_message


def test_the_downstream_job_leaves_out_ingestion_curated_and_orders_and_runs_by_default():
    job = defs.resolve_job_def(downstream_refresh_job.name)
    keys = {tuple(k.path) for k in job.asset_layer.executable_asset_keys}
    assert ("factors", "values") in keys and ("backtest", "metrics") in keys
    assert not any(k[0] in ("raw", "curated", "orders") for k in keys)
    sensor = defs.resolve_sensor_def("new_prices_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
