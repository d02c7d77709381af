"""examples/check_in_notebook.ipynb, executed by a real Jupyter kernel: the report of a good
layer displays as HTML saying it passed, the broken one's as HTML saying it failed, naming dx."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "check_in_notebook.ipynb"


def html_outputs(cell) -> list[str]:
    return [o["data"]["text/html"] for o in cell.get("outputs", []) if "text/html" in o.get("data", {})]


def test_the_example_notebook_shows_the_reports_as_html(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    good, bad = html_outputs(code[1]), html_outputs(code[2])
    assert len(good) == 1 and 'data-passed="true"' in good[0] and "cnncheck: passed" in good[0]
    assert len(bad) == 1 and 'data-passed="false"' in bad[0] and "cnncheck: failed" in bad[0]
    assert "dx" in bad[0] and "FAIL" in bad[0]
    printed = "".join(o.get("text", "") for o in code[2]["outputs"] if o.get("output_type") == "stream")
    assert "passed: False" in printed
