"""The invocation ledger: one file per ``run_all.py`` invocation under the store's ``.ledgers/``, listing
the runs it computed and the runs it read, so a reproduction report can say which results are new."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterable

from ..paths import HOST

LEDGER_DIR = ".ledgers"  # one file per run_all.py invocation: the runs it computed and used
INVOCATION_ENV = "FEWDIMS_INVOCATION"  # set by run_all.py; the notebooks' stores note their runs under it


class InvocationLedger:
    """The runs each invocation computed and read, under ``root/.ledgers/``; a store holds one
    (``RunStore.ledger``). ``is_summary`` tells an exported summary from a finished run."""

    def __init__(self, root: Path, is_summary: Callable[[str], bool]):
        self.root, self.is_summary = Path(root), is_summary

    def begin_invocation(self) -> str:
        """Start accounting for one run_all.py invocation: returns its id and puts it in the environment
        the notebook kernels inherit, so every store they open notes the runs it computes and uses."""
        invocation = f"{time.strftime('%Y%m%dT%H%M%S')}-{HOST}-{os.getpid()}"
        os.environ[INVOCATION_ENV] = invocation
        (self.root / LEDGER_DIR).mkdir(parents=True, exist_ok=True)
        return invocation

    def end_invocation(self) -> None:
        """Stop noting runs in this process (the ledger itself stays)."""
        os.environ.pop(INVOCATION_ENV, None)

    def invocation_runs(self, invocation: str) -> dict[str, list[str]]:
        """The runs of one invocation: ``computed`` (trained by it), ``reused`` (read from this store,
        finished by an earlier invocation) and ``summaries`` (used runs that are exported summaries here;
        none, since executing refuses them), each sorted."""
        events = self.invocation_events(invocation)
        computed = {e["run_id"] for e in events if e["event"] == "computed"}
        used = {e["run_id"] for e in events}
        return {"computed": sorted(computed), "reused": sorted(used - computed),
                "summaries": sorted(r for r in used if self.is_summary(r))}

    def invocation_events(self, invocation: str) -> list[dict]:
        """The invocation's ledger in the order written: ``event`` ("computed" or "used"), ``run_id``, ``pid``
        and ``time`` (seconds since the epoch; absent in ledgers written before it was recorded)."""
        path = self.root / LEDGER_DIR / f"{invocation}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []

    def note(self, event: str, run_ids: Iterable[str]) -> None:
        """Note that this process ``event``ed ("computed" or "used") ``run_ids``, under the invocation in the
        environment (nothing outside an invocation)."""
        invocation = os.environ.get(INVOCATION_ENV)
        if not invocation:
            return
        now = round(time.time(), 3)
        lines = "".join(json.dumps({"event": event, "run_id": r, "pid": os.getpid(), "time": now}) + "\n"
                        for r in run_ids)
        (self.root / LEDGER_DIR).mkdir(parents=True, exist_ok=True)
        with open(self.root / LEDGER_DIR / f"{invocation}.jsonl", "a") as ledger:  # appends of whole lines
            ledger.write(lines)
