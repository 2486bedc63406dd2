"""The nightly deployment: the scan flow on a cron schedule, served by Prefect's own `serve`
(no separate worker infrastructure). Start it with `orderguard serve` against a Prefect
server (see README, "Running every night")."""

from __future__ import annotations

from prefect.schedules import Cron

from pipelines.nightly_scan import ScanParameters, nightly_scan

DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEPLOYMENT_NAME = "nightly"


def serve_nightly(params: ScanParameters, cron: str = DEFAULT_CRON,
                  timezone: str = DEFAULT_TIMEZONE, name: str = DEPLOYMENT_NAME) -> None:
    """Register the deployment and run its scheduled flow runs until stopped."""
    nightly_scan.serve(
        name=name,
        schedules=[Cron(cron, timezone=timezone)],
        parameters={"params": params.model_dump()},
        description="orderguard nightly risk scan: ingest, validate, graphs, score, publish",
        tags=["orderguard", "nightly"],
    )
