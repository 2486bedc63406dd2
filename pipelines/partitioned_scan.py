"""The nightly scan over a partitioned export, for more than one machine.

Each partition folder (one shop group's export, or one day's) is ingested and validated by
its own task on the flow's task runner: threads by default, Dask workers with
`partitioned_scan.with_options(task_runner=dask_task_runner(...))`. One central task then
loads their Parquet into the warehouse (one writer per DuckDB file) and the central stages
run as in the nightly scan: features, graphs, score, publish (orderguard.scan.run_scan, with
orderguard.partitions.PartitionedStages swapping in the two intake stages).

Every Dask worker must reach the input folders and `work_dir`, and report to the same
Prefect API (PREFECT_API_URL set on the workers), so the partition task runs show up under
this flow run.
"""

# No `from __future__ import annotations`: see pipelines/nightly_scan.py.
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run
from pydantic import Field

from orderguard import partitions, scan
from pipelines.nightly_scan import RETRIES, ScanParameters, as_task, publish_artifacts

PARTITION_TIMEOUT = 1800


class PartitionedScanParameters(ScanParameters):
    """The nightly parameters; input_dir holds one sub-folder per partition."""

    input_dir: str = Field(description="night's folder: one export sub-folder per partition")
    work_dir: str | None = Field(
        default=None,
        description="folder for per-partition Parquet that every worker and the central task "
        "reach; default: partitions/ beside the warehouse file",
    )


def on_task_runner(fn, calls: list[dict[str, Any]]) -> list[dict]:
    """Run fn(**call) for every partition as its own task on the flow's task runner."""
    validate = task(fn, name="validate-partition", retries=RETRIES["ingest"], retry_delay_seconds=10,
                    timeout_seconds=PARTITION_TIMEOUT)
    futures = [validate.with_options(task_run_name=f"validate-{call['name']}").submit(**call)
               for call in calls]
    return [future.result() for future in futures]


def dask_task_runner(address: str | None = None, **cluster_kwargs: Any):
    """A DaskTaskRunner on the cluster at `address`, or on a LocalCluster(**cluster_kwargs)."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs=cluster_kwargs or None)


@flow(name="partitioned-scan", log_prints=True)
def partitioned_scan(params: PartitionedScanParameters) -> dict:
    """validate every partition (task runner) -> load centrally -> features -> graphs -> score
    -> publish -> Prefect artifacts."""
    flow_run_id = str(flow_run.id) if flow_run.id else None
    opts = params.options(run_id=uuid.uuid4().hex[:12], flow_run_id=flow_run_id)
    work_dir = Path(params.work_dir) if params.work_dir else Path(params.db_path).parent / "partitions"
    stages = partitions.PartitionedStages(work_dir, map_partitions=on_task_runner, call_stage=as_task)
    run = scan.run_scan(opts, call_stage=stages)
    publish_artifacts(run)
    return run
