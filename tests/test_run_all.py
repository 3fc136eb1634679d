"""End to end: run_all.py executes every notebook on the smoke profile and writes its outputs."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fewdims_helpers.config import ConfigError
from fewdims_helpers.profiles import get_profile

REPO = Path(__file__).resolve().parent.parent


def run_all(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=1200)


def test_smoke_profile_executes_every_notebook(tmp_path):
    result = run_all("--profile", "smoke", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        executed = json.loads((tmp_path / "notebooks" / notebook.name).read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
        prefix = notebook.name[:2]
        written = {p.suffix for p in (tmp_path / "figures").glob(f"{prefix}_*")}
        assert {".csv", ".md", ".png"} <= written, f"{notebook.name} wrote {written}"
    timings = json.loads((tmp_path / "results" / "timings-smoke.json").read_text())
    assert [t["notebook"] for t in timings] == [nb.name for nb in notebooks]
    assert all(t["seconds"] > 0 for t in timings)


def test_unknown_profile_is_rejected_in_one_line():
    result = run_all("--profile", "huge")
    assert result.returncode == 2
    assert "unknown profile 'huge'; choose one of smoke, default, paper" in result.stderr
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        get_profile("huge")


def test_unknown_notebook_prefix_is_rejected():
    result = run_all("--profile", "smoke", "--only", "99")
    assert result.returncode != 0 and "no notebook starts with 99" in result.stderr
