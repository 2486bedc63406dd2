"""The nightly scan as a real Prefect flow (one run against the session's test server,
conftest.prefect_server)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.flow
def test_the_flow_publishes_what_the_plain_pipeline_publishes(prefect_server, scanned_world, tmp_path):
    from pipelines.nightly_scan import ScanParameters, nightly_scan

    params = ScanParameters(
        input_dir=str(scanned_world["input"]), out_dir=str(tmp_path / "out"),
        db_path=str(tmp_path / "wh.duckdb"), models_dir=str(tmp_path / "models"),
    )
    run = nightly_scan(params)
    published = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    assert published["flow_run_id"] and published["flow_run_id"] == run["flow_run_id"]
    for name in ("order_scores.parquet", "flagged_orders.csv", "rings.csv", "flagged_accounts.csv"):
        assert (tmp_path / "out" / name).read_bytes() == (scanned_world["out"] / name).read_bytes(), name
    # each stage's log lines are in the flow run's logs (the Prefect UI, `prefect flow-run logs`)
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterName

    async def logged(name: str) -> int:  # one logger at a time: the API returns 200 at most
        async with get_client() as client:
            return len(await client.read_logs(LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[run["flow_run_id"]]),
                name=LogFilterName(any_=[name])), limit=1))

    names = {n for n in ("orderguard.scan", "orderguard.ingest", "orderguard.features")
             if asyncio.run(logged(n))}
    assert {"orderguard.scan", "orderguard.ingest", "orderguard.features"} <= names


def test_a_stage_is_retried_for_a_passing_fault_never_for_a_bad_export():
    from prefect.states import Failed

    from orderguard.history import QuietNightError
    from orderguard.ingest import InputError
    from pipelines.nightly_scan import worth_retrying

    assert not worth_retrying(None, None, Failed(data=InputError("orders.csv: no column amount")))
    assert not worth_retrying(None, None, Failed(data=QuietNightError("no valid orders")))
    assert worth_retrying(None, None, Failed(data=OSError("disk briefly unavailable")))


@pytest.mark.flow
def test_a_killed_scans_flow_run_left_running_is_marked_crashed_by_the_next_scan(prefect_server, tmp_path):
    """A scan killed outright cannot report its end: Prefect shows its run Running forever.
    The next scan of the same warehouse, holding its lock, marks that run Crashed; a Running
    run of another warehouse may be alive and is left alone."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    from pipelines.nightly_scan import ScanParameters, close_abandoned_runs, nightly_scan

    def running_run(db: str) -> str:
        params = ScanParameters(input_dir="in", out_dir="out", db_path=db).model_dump()
        with get_client(sync_client=True) as client:
            return str(client.create_flow_run(nightly_scan, parameters={"params": params},
                                              state=Running()).id)

    killed = running_run(str(tmp_path / "wh.duckdb"))
    elsewhere = running_run(str(tmp_path / "other.duckdb"))
    this_scan = running_run(str(tmp_path / "wh.duckdb"))
    # one started after this scan has not reached the lock yet: alive, left alone
    started_later = running_run(str(tmp_path / "wh.duckdb"))
    assert close_abandoned_runs(tmp_path / "wh.duckdb", current_run_id=this_scan) == [killed]
    with get_client(sync_client=True) as client:
        states = {run: client.read_flow_run(run).state
                  for run in (killed, elsewhere, this_scan, started_later)}
    assert states[killed].name == "Crashed" and "killed" in states[killed].message
    assert [states[run].name for run in (elsewhere, this_scan, started_later)] == ["Running"] * 3
    assert close_abandoned_runs(tmp_path / "wh.duckdb", current_run_id=this_scan) == []
