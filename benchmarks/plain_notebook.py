#!/usr/bin/env python
"""Execute a study notebook's code cells in this Python process, for a machine without papermill or a
Jupyter kernel (the lent GPU machine's image has neither).

    python benchmarks/plain_notebook.py notebooks/01_token_wise.ipynb \\
        --parameters '{"profile": "default", "output_dir": "build/gpu_study", "options": {"device": "cuda"}}'

As papermill does for ``run_all.py``: the given parameters are assigned right after the notebook's
``parameters`` cell (an earlier run's ``injected-parameters`` cell is skipped), the cells run in order in
one namespace with the notebooks folder as the working directory, and the first error stops it (exit 1,
naming the cell). Unlike papermill, the executed notebook is not written (the tables and figures the cells
write are), ``display(x)`` prints ``x``, a cell's last expression is not shown, and figures use Agg.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def code_cells(notebook: dict, parameters: dict) -> list[str]:
    """The sources to execute, in order: every code cell but an old ``injected-parameters`` one, with the
    ``parameters`` assigned in a cell of their own after the ``parameters`` cell."""
    sources = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue
        sources.append("".join(cell["source"]))
        if "parameters" in tags:
            sources.append("".join(f"{name} = {value!r}\n" for name, value in parameters.items()))
    return sources


def display(*values) -> None:
    for value in values:
        print(value)


def execute(path: Path, parameters: dict) -> int:
    notebook = json.loads(Path(path).read_text())
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.chdir(REPO / "notebooks")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    namespace = {"__name__": "__main__", "display": display}
    cells = code_cells(notebook, parameters)
    for index, source in enumerate(cells, start=1):
        start = time.perf_counter()
        try:
            exec(compile(source, f"<{Path(path).name} cell {index}>", "exec"), namespace)
        except BaseException:  # noqa: BLE001 (the notebook's error, reported as papermill would)
            traceback.print_exc()
            print(f"plain_notebook: {Path(path).name} failed in cell {index} of {len(cells)}", file=sys.stderr,
                  flush=True)
            return 1
        print(f"plain_notebook: {Path(path).name} cell {index}/{len(cells)} in {time.perf_counter() - start:.1f} s",
              flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--parameters", default="{}", help="JSON object: the parameters to inject")
    args = parser.parse_args()
    return execute(args.notebook.resolve(), json.loads(args.parameters))


if __name__ == "__main__":
    sys.exit(main())
