"""The analyst notebooks run top to bottom with a real Jupyter kernel on a freshly scanned
warehouse, and are committed the way a reviewer wants them: without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_four_analyst_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01-tonight.ipynb", "02-thresholds.ipynb", "03-investigate.ipynb",
        "04-distribution-health.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs_and_starts_by_importing_orderguard(path):
    book = json.loads(path.read_text("utf-8"))
    code = [c for c in book["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is None and c["outputs"] == [] for c in code)
    assert "from orderguard import" in "".join(code[0]["source"])
    assert book["cells"][0]["cell_type"] == "markdown", "a notebook opens by saying what it is for"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "analyst.warehouse_path()" in "".join(params[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_on_a_fresh_warehouse(path, scanned_world, monkeypatch):
    # the kernel inherits this environment: the notebooks read the test warehouse and labels
    monkeypatch.setenv("ORDERGUARD_DB", str(scanned_world["db"]))
    monkeypatch.setenv("ORDERGUARD_LABELS", str(scanned_world["labels"]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    assert shown, "the notebook shows its tables and charts"
