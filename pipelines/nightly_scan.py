"""The nightly risk scan as a Prefect flow: each stage of orderguard.scan is one task."""

# No `from __future__ import annotations` here: a served run gets the flow function pickled by
# value, and a string annotation ("ScanParameters") could not be resolved there (every
# scheduled run failed parameter validation; tests/test_deployment.py).
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from orderguard import config, history, ingest, scan, warehouse

# Stages that touch files or the warehouse file get retries; the pure ones do not.
RETRIES = {"ingest": 2, "publish": 2}
TIMEOUTS = {"ingest": 1800, "stage": 1800, "features": 1800, "graphs": 1800, "score": 1800, "publish": 600}


class ScanParameters(BaseModel):
    """Typed parameters, so the Prefect UI renders a form."""

    input_dir: str = Field(description="export folder: orders, accounts, products, commissions")
    out_dir: str = Field(description="where the published files go")
    db_path: str = Field(default_factory=lambda: str(config.default_db_path()))
    rules_path: str | None = Field(default=None, description="rules TOML; package default if empty")
    programme_path: str | None = Field(default=None, description="programme TOML; package default if empty")
    models_dir: str | None = Field(default=None, description="model folder; beside the warehouse if empty")
    encoding: str | None = Field(default=None, description="CSV encoding; detected if empty")
    review_budget: int | None = Field(default=None, description="orders support reviews per day")
    seed: int = 7
    run_date: str | None = Field(default=None, description="night to scan; input may hold {date}")
    lookback_days: int = Field(default=30, ge=1, description="nights of history features and graphs see")
    keep_days: int = Field(default=90, ge=1,
                           description="nights of history and night folders kept; >= lookback_days")
    allow_small_export: bool = Field(default=False, description="scan a far smaller night anyway")

    def options(self, run_id: str, flow_run_id: str | None) -> scan.ScanOptions:
        return scan.ScanOptions(
            input_dir=Path(self.input_dir), out_dir=Path(self.out_dir), db_path=Path(self.db_path),
            rules_path=Path(self.rules_path) if self.rules_path else None,
            programme_path=Path(self.programme_path) if self.programme_path else None,
            models_dir=Path(self.models_dir) if self.models_dir else None, encoding=self.encoding,
            review_budget=self.review_budget, seed=self.seed, run_date=self.run_date, run_id=run_id,
            flow_run_id=flow_run_id, lookback_days=self.lookback_days, keep_days=self.keep_days,
            allow_small_export=self.allow_small_export,
        )

    @classmethod
    def from_options(cls, opts: scan.ScanOptions) -> "ScanParameters":
        return cls(
            input_dir=str(opts.input_dir), out_dir=str(opts.out_dir), db_path=str(opts.db_path),
            rules_path=str(opts.rules_path) if opts.rules_path else None,
            programme_path=str(opts.programme_path) if opts.programme_path else None,
            models_dir=str(opts.models_dir), encoding=opts.encoding,
            review_budget=opts.review_budget, seed=opts.seed, run_date=opts.run_date,
            lookback_days=opts.lookback_days, keep_days=opts.keep_days,
            allow_small_export=opts.allow_small_export,
        )


# problems a retry ten seconds later cannot fix: a bad export, a refused night, a warehouse
# another scan holds (retrying them tripled the time to the error and printed it thrice)
NOT_TRANSIENT = (ingest.InputError, history.QuietNightError, scan.ScanBusyError,
                 warehouse.WarehouseBusyError, warehouse.WarehouseTooNewError)


def worth_retrying(task, task_run, state) -> bool:
    """Prefect's retry_condition_fn: retry a failed stage unless its error is permanent."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result: let the retry policy decide
        return True
    return not isinstance(error, NOT_TRANSIENT)


def as_task(name: str, fn, *args):
    stage = task(fn, name=name, retries=RETRIES.get(name, 0), retry_delay_seconds=10,
                 retry_condition_fn=worth_retrying, timeout_seconds=TIMEOUTS.get(name))
    return stage(*args)


@flow(name="nightly-scan", log_prints=True)
def nightly_scan(params: ScanParameters) -> dict:
    """ingest -> stage -> features -> graphs -> score -> publish -> Prefect artifacts."""
    flow_run_id = str(flow_run.id) if flow_run.id else None
    if logging.getLogger("orderguard").level == logging.NOTSET:  # a served run: no CLI set it
        logging.getLogger("orderguard").setLevel(logging.INFO)
    opts = params.options(run_id=uuid.uuid4().hex[:12], flow_run_id=flow_run_id)
    run = scan.run_scan(opts, call_stage=as_task, on_locked=lambda: report_abandoned_runs(opts))
    publish_artifacts(run)
    return run


def report_abandoned_runs(opts: scan.ScanOptions) -> None:
    """Close the flow runs killed scans of this warehouse left Running, and say so in the log.
    The night matters more than the UI's history: a failure here is a warning."""
    # orderguard's logger: on the CLI's console and, as an extra logger, in the run's logs
    log = logging.getLogger("orderguard.pipelines")
    try:
        closed = close_abandoned_runs(opts.db_path, opts.flow_run_id)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not look for flow runs left Running: %s", exc)
        return
    if closed:
        log.warning("marked %d flow run(s) of this warehouse Crashed, left Running by killed "
                    "scans: %s", len(closed), ", ".join(closed))


def summary_markdown(run: dict) -> str:
    """The night in a few lines for the Prefect UI (the same figures as report.html)."""
    s = run["publish"]
    levels = s.get("flagged_by_level", {})
    kinds = ", ".join(f"{k} {v}" for k, v in s.get("rings_by_kind", {}).items()) or "none"
    reasons = ", ".join(f"`{k}` {v}" for k, v in s.get("top_reasons", {}).items()) or "none"
    return "\n".join([
        f"# orderguard night {run['run_date']}",
        "",
        "| figure | tonight |",
        "|---|---|",
        f"| orders scanned | {s['orders_scored']:,} |",
        f"| orders flagged | {s['orders_flagged']:,} (high {levels.get('high', 0):,}, "
        f"medium {levels.get('medium', 0):,}) |",
        f"| GMV / commission on flagged orders | CNY {s.get('gmv_flagged', 0):,.2f} / "
        f"CNY {s.get('commission_flagged', 0):,.2f} |",
        f"| accounts flagged | {s['accounts_flagged']:,} |",
        f"| rings | {s['rings']:,} ({kinds}); new tonight {s.get('rings_new', 0)}, "
        f"gone since {s.get('previous_night') or '-'}: {s.get('rings_gone', 0)} |",
        f"| rows quarantined | {s['quarantined_rows']:,} |",
        "",
        f"Top reasons: {reasons}",
        "",
        f"Published to `{s['published']}`; model {run['scoring']['model_action']}.",
    ])


@task(name="artifacts")
def publish_artifacts(run: dict) -> None:
    """Markdown summary, table of top rings and a link to report.html in the Prefect UI.
    The night is already published: an artifact that cannot be stored is logged, not fatal."""
    s = run["publish"]
    rings = s.get("top_rings") or []
    try:
        create_markdown_artifact(key="nightly-scan-summary", markdown=summary_markdown(run),
                                 description=f"orderguard night {run['run_date']}")
        create_table_artifact(
            key="nightly-scan-top-rings",
            table=rings or {"ring_id": [], "kind": [], "size": [], "orders": [], "gmv": [], "commission": []},
            description=f"top rings by GMV, night {run['run_date']}",
        )
        report = (Path(s["published"]).resolve() / "report.html").as_uri()
        create_link_artifact(key="nightly-scan-report", link=report,
                             link_text=f"report.html, night {run['run_date']}",
                             description="self-contained report for risk leads")
    except Exception as exc:  # noqa: BLE001 - the scan's outputs are complete either way
        get_run_logger().warning("could not store the run's artifacts: %s", exc)


def close_abandoned_runs(db_path: str | Path, current_run_id: str | None) -> list[str]:
    """Mark Crashed the nightly-scan flow runs of this warehouse that Prefect still shows as
    Running although their scan is gone (killed outright, or by the OOM killer: nothing was
    left to report the end). Called once this scan holds the warehouse's scan lock, which no
    live scan of the same warehouse can hold, so every other Running run of it is dead.
    Without this the Prefect UI shows such a run running forever. Returns their ids."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    warehouse_file = Path(db_path).resolve()
    closed = []
    with get_client(sync_client=True) as client:
        # only runs that started before this one: a scan started after it has not reached the
        # lock yet and is alive (it will be refused the warehouse and fail on its own)
        started = (client.read_flow_run(current_run_id).start_time if current_run_id else None)
        started = started or datetime.now(UTC)
        running = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["nightly-scan"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.RUNNING]))))
        for run in running:
            scanned = (run.parameters.get("params") or {}).get("db_path")
            if (str(run.id) == current_run_id or not scanned or run.start_time is None
                    or run.start_time >= started or Path(scanned).resolve() != warehouse_file):
                continue
            client.set_flow_run_state(run.id, Crashed(message=(
                f"its scan of {warehouse_file} ended without reporting (killed?); found by flow "
                f"run {current_run_id}, which holds the warehouse's scan lock now")), force=True)
            closed.append(str(run.id))
    return closed
