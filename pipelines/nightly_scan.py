"""The nightly risk scan as a Prefect flow: each stage of orderguard.scan is one task."""

from __future__ import annotations

import uuid
from pathlib import Path

from prefect import flow, task
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from orderguard import config, scan

# Stages that touch files or the warehouse file get retries; the pure ones do not.
RETRIES = {"ingest": 2, "publish": 2}
TIMEOUTS = {"ingest": 1800, "stage": 1800, "features": 1800, "graphs": 1800, "score": 1800, "publish": 600}


class ScanParameters(BaseModel):
    """Typed parameters, so the Prefect UI renders a form."""

    input_dir: str = Field(description="export folder: orders, accounts, products, commissions")
    out_dir: str = Field(description="where the published files go")
    db_path: str = Field(default_factory=lambda: str(config.default_db_path()))
    rules_path: str | None = Field(default=None, description="rules TOML; package default if empty")
    models_dir: str = Field(default_factory=lambda: str(config.models_dir()))
    encoding: str | None = Field(default=None, description="CSV encoding; detected if empty")
    review_budget: int | None = Field(default=None, description="orders support reviews per day")
    seed: int = 7
    run_date: str | None = None

    def options(self, run_id: str, flow_run_id: str | None) -> scan.ScanOptions:
        return scan.ScanOptions(
            input_dir=Path(self.input_dir), out_dir=Path(self.out_dir), db_path=Path(self.db_path),
            rules_path=Path(self.rules_path) if self.rules_path else None,
            models_dir=Path(self.models_dir), encoding=self.encoding,
            review_budget=self.review_budget, seed=self.seed, run_date=self.run_date, run_id=run_id,
            flow_run_id=flow_run_id,
        )


def as_task(name: str, fn, *args):
    stage = task(fn, name=name, retries=RETRIES.get(name, 0), retry_delay_seconds=10,
                 timeout_seconds=TIMEOUTS.get(name))
    return stage(*args)


@flow(name="nightly-scan", log_prints=True)
def nightly_scan(params: ScanParameters) -> dict:
    """ingest -> stage -> features -> graphs -> score -> publish."""
    flow_run_id = str(flow_run.id) if flow_run.id else None
    opts = params.options(run_id=uuid.uuid4().hex[:12], flow_run_id=flow_run_id)
    return scan.run_scan(opts, call_stage=as_task)
