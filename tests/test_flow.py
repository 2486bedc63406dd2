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
