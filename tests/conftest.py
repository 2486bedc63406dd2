"""Shared, session-scoped worlds: generating and scanning costs seconds, so tests share them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orderguard.cli import PREFECT_RUN_LOGS

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
for _name, _value in PREFECT_RUN_LOGS.items():  # as the CLI sets them before Prefect loads
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server per session (about 25 s to start on 2 cores), shared by every
    test that runs a real flow. It runs no scheduler: tests/test_deployment.py starts a full
    server for the scheduled run."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> dict[str, Path]:
    """A 3,000-account world with every fraud kind and every honest crowd."""
    from orderguard.generate import generate_to_folders

    root = tmp_path_factory.mktemp("world")
    generate_to_folders(root / "input", root / "labels", accounts=3000, seed=11, preset="default")
    return {"input": root / "input", "labels": root / "labels", "root": root}


@pytest.fixture(scope="session")
def scanned_world(small_world, tmp_path_factory) -> dict:
    """small_world scanned once with the plain-function pipeline."""
    from orderguard.scan import ScanOptions, run_scan

    root = tmp_path_factory.mktemp("scan")
    opts = ScanOptions(
        input_dir=small_world["input"], out_dir=root / "out", db_path=root / "wh.duckdb",
        models_dir=root / "models", run_id="test-run-1",
    )
    run = run_scan(opts)
    return {**small_world, "out": root / "out", "db": root / "wh.duckdb", "run": run,
            "models": root / "models", "opts": opts}
