"""Replacing the committed reference (``--update-reference``): the whole of it from this invocation's runs and tables
(``update_reference``), or one notebook's part only, refused unless the baseline runs it read are the reference's
own (``update_notebooks``, ``refusal``). ``reproduction`` compares against the reference; this module writes it."""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from ..paths import write_atomically
from ..runs.reference_export import export_summary
from ..runs.store import RunStore
from .reproduction import TABLE_NAME, reference_folders

log = logging.getLogger(__name__)


def _notebook_entry(run_ids: list[str], tables: list[str], provenance: dict | None) -> dict:
    """What ``reference.json`` records of one notebook: its runs and tables, and the code commit and the
    machine they came from."""
    machine = {k: v for k, v in (provenance or {}).items() if k != "git_commit"}
    return {"runs": sorted(run_ids), "tables": sorted(tables), "commit": (provenance or {}).get("git_commit"),
            "machine": machine, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def update_reference(local: RunStore, run_ids: list[str], figures: Path, reference_root: Path, made_by: dict,
                     note: str | None = None, notebooks: dict[str, list[str]] | None = None,
                     provenance: dict | None = None) -> dict:
    """Replace the reference with the summaries of ``run_ids`` (through ``reference_export.export_summary``) and a
    copy of the studies' tables in ``figures``. ``made_by`` (profile, overrides, tasks, model) says which
    invocations' tables are comparable with it; ``notebooks`` (prefix -> the runs it used) and
    ``provenance`` (commit and machine, ``provenance.environment``) are recorded per notebook, so one notebook
    can later be refreshed alone (``update_notebooks``). Returns what ``reference.json`` records."""
    exported: list[dict] = []

    def write(tmp: Path) -> None:
        folders = reference_folders(tmp)
        folders["figures"].mkdir(parents=True)
        for run_id in run_ids:
            exported.append(export_summary(local, run_id, folders["runs"]))
        tables = sorted(p for p in figures.glob("*.csv") if TABLE_NAME.match(p.name))
        for table in tables:
            shutil.copy2(table, folders["figures"] / table.name)
        summary = {"made_by": made_by, "note": note, "runs": len(exported),
                   "with_test_predictions": sum(e["test_predictions"] for e in exported),
                   "tables": len(tables), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if notebooks is not None:
            summary["notebooks"] = {prefix: _notebook_entry(ids, [t.name for t in tables if t.name[:2] == prefix],
                                                            provenance) for prefix, ids in sorted(notebooks.items())}
        folders["about"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")

    write_atomically(Path(reference_root), write)
    counts = json.loads(reference_folders(reference_root)["about"].read_text())
    log.info("reference %s: %d runs (%d with test predictions), %d tables", reference_root, counts["runs"],
             counts["with_test_predictions"], counts["tables"])
    return counts


def refusal(local: RunStore, notebooks: dict[str, list[str]], reference_root: Path, made_by: dict,
            baselines: list[str]) -> str | None:
    """Why notebooks ``notebooks`` (prefix -> the runs it used) cannot replace their part of the reference
    alone, or None when they can: the reference must record its notebooks, have been made with the same
    profile, and, where it holds other notebooks, every baseline run they read must be the reference's own,
    with the same run id and the same metrics (else the other notebooks' tables rest on other baselines
    than these). Where there is no reference yet, these notebooks start one."""
    folders = reference_folders(reference_root)
    if not folders["root"].exists():
        return None  # no reference yet: these notebooks start one
    about = json.loads(folders["about"].read_text()) if folders["about"].exists() else {}
    if "notebooks" not in about:
        return (f"{folders['about']} records no notebooks (a reference made before per-notebook refreshes, or none "
                f"at all); replace it whole: python run_all.py --update-reference")
    if about.get("made_by") != made_by:
        return f"the reference was made with {about.get('made_by')}, this invocation with {made_by}"
    if not set(about["notebooks"]) - set(notebooks):
        return None  # no other notebook rests on the reference's baselines
    reference, known = RunStore(folders["runs"]), set(RunStore(folders["runs"]).run_ids())
    wanted = set(baselines)
    for prefix, run_ids in sorted(notebooks.items()):
        read = sorted(wanted & set(run_ids))
        foreign = [r for r in read if r not in known]
        if foreign:
            return (f"notebook {prefix} read {len(foreign)} baseline run(s) the reference does not have ({foreign[0]}"
                    f"{', ...' if len(foreign) > 1 else ''}): its other notebooks rest on other baselines (another "
                    f"recipe, data or code); replace the reference whole")
        for run_id in read:
            mine, theirs = local.metrics(run_id), reference.metrics(run_id)
            for part in ("test", "validation", "best_epoch"):
                if mine.get(part) != theirs.get(part):
                    return (f"notebook {prefix} read baseline run {run_id}, whose {part} metrics differ from the "
                            f"reference's ({mine.get(part)} here, {theirs.get(part)} there): retrained elsewhere or "
                            f"on other code; replace the reference whole, or reuse the reference's machine")
    return None


def update_notebooks(local: RunStore, notebooks: dict[str, list[str]], figures: Path, reference_root: Path,
                     made_by: dict, baselines: list[str], provenance: dict | None = None
                     ) -> tuple[dict, str | None]:
    """Replace the runs and tables of ``notebooks`` (prefix -> the runs it used) in the reference, keeping
    every other notebook's, when ``refusal`` finds no reason against it. A run the other notebooks still
    list stays. Returns (what ``reference.json`` records now, None), or ({}, the reason) unchanged."""
    reason = refusal(local, notebooks, reference_root, made_by, baselines)
    if reason:
        return {}, reason
    source = reference_folders(reference_root)
    fresh = not source["root"].exists()  # a new reference of these notebooks only
    about = {"made_by": made_by, "note": None, "notebooks": {}, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")} \
        if fresh else json.loads(source["about"].read_text())
    entries = dict(about["notebooks"])
    others = {r for prefix, entry in entries.items() if prefix not in notebooks for r in entry["runs"]}
    tables = {prefix: sorted(p.name for p in figures.glob(f"{prefix}_*.csv") if TABLE_NAME.match(p.name))
              for prefix in notebooks}

    def write(tmp: Path) -> None:
        folders = reference_folders(tmp)
        if fresh:
            folders["runs"].mkdir(parents=True)
            folders["figures"].mkdir()
        else:
            shutil.copytree(source["root"], tmp)
        for prefix in notebooks:
            for run_id in set(entries.get(prefix, {}).get("runs", [])) - others:
                shutil.rmtree(folders["runs"] / run_id, ignore_errors=True)
            for old in folders["figures"].glob(f"{prefix}_*.csv"):
                old.unlink()
            for run_id in notebooks[prefix]:
                if run_id not in others:  # a run the other notebooks list is theirs too: it stays as it is
                    export_summary(local, run_id, folders["runs"])
            for name in tables[prefix]:
                shutil.copy2(figures / name, folders["figures"] / name)
            entries[prefix] = _notebook_entry(notebooks[prefix], tables[prefix], provenance)
        store = RunStore(folders["runs"])
        run_ids = store.run_ids()
        summary = {**about, "notebooks": dict(sorted(entries.items())), "runs": len(run_ids),
                   "with_test_predictions": sum(store.has_predictions(r, "test") for r in run_ids),
                   "tables": len(list(folders["figures"].glob("*.csv"))), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        folders["about"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")

    write_atomically(Path(reference_root), write)
    counts = json.loads(source["about"].read_text())
    log.info("reference %s: notebook(s) %s replaced", reference_root, ", ".join(sorted(notebooks)))
    return counts, None

