"""The run store's worker processes end with the process that started them."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PARENT = textwrap.dedent("""
    import time
    from fewdims_helpers.execution import Execution
    from fewdims_helpers.runs.workers import WorkerPool

    if __name__ == "__main__":
        pool = WorkerPool(2, Execution("cpu", False, 1))
        futures = [pool.submit(time.sleep, 120) for _ in range(2)]
        while not all(f.running() for f in futures):
            time.sleep(0.1)
        print(" ".join(str(pid) for pid in pool.executor()._processes), flush=True)
        time.sleep(120)
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purpose
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.slow  # starts a pool of processes and waits for them to go
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in workers), "a worker kept running after its parent was killed"
    finally:
        parent.kill()
