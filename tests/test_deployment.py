"""The nightly deployment served on a schedule against a real local Prefect server.

The session's test harness server (conftest.prefect_server) runs no scheduler, so this
module starts `prefect server start --host 127.0.0.1` on a free port for itself. Every
process it starts has a hard timeout and is killed in a finally.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

OUTPUTS = ("order_scores.parquet", "flagged_orders.csv", "rings.csv", "flagged_accounts.csv")
SERVER_START_SECONDS = 90
SCHEDULE_LEAD_SECONDS = 30  # serve must register the deployment before the run is due
RUN_TIMEOUT_SECONDS = 120
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home}/prefect.db",
        PREFECT_RUNNER_POLL_FREQUENCY="2",  # serve looks for due runs every 2 s (default 10)
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def stop(proc: subprocess.Popen) -> None:
    """Kill the process and everything it started (its own session)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:]) if path.exists() else ""


@pytest.fixture(scope="module")
def scheduling_server(tmp_path_factory):
    """`prefect server start --host 127.0.0.1` (scheduler on, UI off) on a free port."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    log = home / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
             "--no-ui", "--analytics-off"],
            env=prefect_env(home), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Prefect server did not start:\n{tail(log)}")
            time.sleep(0.5)
        yield {"api": api, "home": home}
    finally:
        stop(proc)


def flow_runs_of(api: str, deployment: str):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        try:
            dep = client.read_deployment_by_name(deployment)
        except ObjectNotFound:  # not registered yet
            return None, []
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
        return dep, runs


@pytest.mark.flow
def test_the_served_deployment_runs_on_schedule_and_matches_the_same_scan_run_by_hand(
        scheduling_server, scanned_world, tmp_path):
    api, home = scheduling_server["api"], scheduling_server["home"]
    env = prefect_env(home, api)
    due = (datetime.now(UTC) + timedelta(seconds=SCHEDULE_LEAD_SECONDS)).replace(microsecond=0)
    cron = f"{due.minute} {due.hour} * * * {due.second}"  # once a day, at this second (6th field)
    served, by_hand = tmp_path / "served", tmp_path / "by-hand"
    common = ["--input", str(scanned_world["input"])]
    serve_log = tmp_path / "serve.log"
    with open(serve_log, "w") as out:
        serve = subprocess.Popen(
            [str(BIN / "orderguard"), "serve", *common, "--out", str(served / "out"),
             "--db", str(served / "wh.duckdb"), "--models", str(served / "models"),
             "--cron", cron, "--timezone", "UTC", "--name", "nightly"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        # meanwhile, by hand: the same flow from the plain CLI, reporting to the same server
        hand = subprocess.run(
            [str(BIN / "orderguard"), "scan", *common, "--out", str(by_hand / "out"),
             "--db", str(by_hand / "wh.duckdb"), "--models", str(by_hand / "models")],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS,
        )
        assert hand.returncode == 0, hand.stderr[-3000:]

        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        dep, runs = None, []
        while time.monotonic() < deadline and serve.poll() is None:
            dep, runs = flow_runs_of(api, "nightly-scan/nightly")
            if any(r.state and r.state.is_final() for r in runs):
                break
            time.sleep(2)
        assert serve.poll() is None, f"orderguard serve exited:\n{tail(serve_log)}"
        assert dep is not None, f"the deployment was never registered:\n{tail(serve_log)}"
        assert dep.created < due, "serve registered the deployment after the run was due"
        finished = [r for r in runs if r.state and r.state.is_final()]
        assert finished, f"no scheduled run finished in time: {[(r.name, r.state_name) for r in runs]}"
        run = finished[0]
        assert run.auto_scheduled and run.expected_start_time == due, (run.expected_start_time, due)
        assert run.state.is_completed(), f"{run.state}\n{tail(serve_log)}"
    finally:
        stop(serve)

    for name in OUTPUTS:
        scheduled = (served / "out" / name).read_bytes()
        assert scheduled == (by_hand / "out" / name).read_bytes(), name
        assert scheduled == (scanned_world["out"] / name).read_bytes(), name
