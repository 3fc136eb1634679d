"""The Ray backend: the same runs and metrics as the local pool, nothing submitted twice, GPUs handed
out and packed, errors that reach the caller unretried, dead workers retried, runs that read runs
waiting for them, a two-node cluster on 127.0.0.1 that loses a node mid-run without losing or
doubling a run or leaving its temporary folder, and a two-node cluster with token authentication that
runs for the token's holder only. Local Ray with fake GPUs; no real cluster, loopback addresses only."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.xdist_group("ray"),  # one process: its module's Ray cluster, and no two clusters at once
              pytest.mark.slow]

ray = pytest.importorskip("ray", reason="the Ray backend is optional: pip install -r requirements-ray.txt")

from fewdims_helpers import paths  # noqa: E402
from fewdims_helpers.runs import ray_backend, store  # noqa: E402
from fewdims_helpers.config import DataConfig  # noqa: E402
from fewdims_helpers.options import RunOptions  # noqa: E402
from fewdims_helpers.runs.runner import Runner  # noqa: E402

from conftest import tiny_config  # noqa: E402

# every node the same auth mode (loopback only, so none), no usage reports, and on Ray's processes'
# path this folder (the stand-in runs below) and, first, a stub for a slow optional import that made
# the raylet abort at start-up here (tests/ray_processes)
TESTS = Path(__file__).parent
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join(
    filter(None, [str(TESTS / "ray_processes"), str(TESTS), os.environ.get("PYTHONPATH")]))}
RENDEZVOUS_SECONDS = 60


def small_configs(*seeds, epochs: int = 1):
    data = DataConfig("rt-polarity", max_seq_length=16, max_train_examples=32, max_eval_examples=16)
    return [dataclasses.replace(tiny_config(seed=s, epochs=epochs), data=data) for s in seeds]


def without_timings(value):
    """Metrics with wall times dropped (everything else must be bitwise equal)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def stored_metrics(runs: Runner, configs) -> dict:
    return {c.run_id: without_timings(runs.store.metrics(c)) for c in configs}


@pytest.fixture(scope="module")
def local_ray():
    """A private Ray on this machine: 2 CPUs and 2 fake GPUs (no CUDA here, so runs train on the CPU)."""
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    os.environ.update(RAY_ENV)
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
             logging_level="WARNING", _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()
    for name, value in saved.items():
        os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)


def ray_store(root, **options) -> Runner:
    return Runner(store.RunStore(root), RunOptions(backend="ray", progress=False, **options))


def test_ray_gives_the_local_pools_runs_bitwise_and_a_second_call_submits_nothing(tmp_path, local_ray, monkeypatch):
    configs = small_configs(1, 2)
    local = Runner(store.RunStore(tmp_path / "local"), RunOptions(workers=2, progress=False))  # 1 thread per worker
    local_frame = local.execute_all(configs)
    local._pool.shutdown()
    runs = ray_store(tmp_path / "ray")  # a fake GPU per run: no CPU of its own, 1 torch thread
    frame = runs.execute_all(configs)
    assert list(frame.run_id) == list(local_frame.run_id) == [c.run_id for c in configs]
    assert stored_metrics(runs, configs) == stored_metrics(local, configs)
    assert {runs.store.record(c)["threads"] for c in configs} == {local.store.record(c)["threads"] for c in configs} == {1}

    submitted = []
    monkeypatch.setattr(ray_backend.RayPool, "submit_runs", lambda self, f, root, options, cs: submitted.extend(cs))
    again = ray_store(tmp_path / "ray").execute_all(configs)
    assert submitted == [] and list(again.run_id) == list(frame.run_id)


def meet_and_report(root: str, options: RunOptions, config) -> dict:
    """A stand-in run: waits until as many tasks as the file ``together`` says have started (so that they
    run at the same time), and reports the GPU Ray gave it."""
    Path(root, f"started-{config.train.seed}").touch()
    together, deadline = int(Path(root, "together").read_text()), time.monotonic() + RENDEZVOUS_SECONDS
    while len(list(Path(root).glob("started-*"))) < together and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"met": len(list(Path(root).glob("started-*"))) >= together,
            "devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


@pytest.mark.parametrize("gpus_per_run, together", [(1.0, 2), (0.5, 4)])
def test_runs_get_their_own_gpus_and_fractions_pack(tmp_path, local_ray, gpus_per_run, together):
    options = RunOptions(backend="ray", gpus_per_run=gpus_per_run, progress=False)
    pool = ray_backend.RayPool(options)
    assert ray_backend.run_resources(options) == {"num_cpus": 0.0, "num_gpus": gpus_per_run}
    assert pool.size == together  # 2 fake GPUs over the share of a run
    Path(tmp_path, "together").write_text(str(together))
    configs = [tiny_config(seed=s) for s in range(together)]
    reports = pool.results(pool.submit_runs(meet_and_report, str(tmp_path), options, configs))
    assert all(r["met"] for r in reports), reports  # all of them ran at the same time
    devices = [r["devices"] for r in reports]
    assert all(d in ("0", "1") for d in devices) and sorted(devices) == sorted(["0", "1"] * (together // 2))


def raise_once_counted(root: str, options: RunOptions, config) -> str:
    """Seed 0 raises ValueError; seed 1 kills its worker process on its first attempt only."""
    with open(Path(root, f"attempts-{config.train.seed}"), "a") as attempts:
        attempts.write("x")
    if config.train.seed == 0:
        raise ValueError("bad input")
    if len(Path(root, f"attempts-{config.train.seed}").read_text()) == 1:
        os._exit(1)  # the worker process dies
    return "done"


def test_a_python_error_is_not_retried_and_a_dead_worker_is(tmp_path, local_ray):
    options = RunOptions(backend="ray", progress=False)
    pool = ray_backend.RayPool(options)
    raising, dying = tiny_config(seed=0), tiny_config(seed=1)
    with pytest.raises(ValueError, match=f"run {raising.run_id}: bad input"):
        pool.results(pool.submit_runs(raise_once_counted, str(tmp_path), options, [raising]))
    assert Path(tmp_path, "attempts-0").read_text() == "x"  # tried once
    assert pool.results(pool.submit_runs(raise_once_counted, str(tmp_path), options, [dying])) == ["done"]
    assert Path(tmp_path, "attempts-1").read_text() == "xx"  # died once, retried once

    reads_missing = dataclasses.replace(small_configs(4)[0], init_from="rt-polarity-cls-s9-0000000000")
    with pytest.raises(FileNotFoundError, match=f"run {reads_missing.run_id}: run rt-polarity-cls-s9"):
        ray_store(tmp_path / "runs").execute_all([reads_missing])  # the store's own error, through Ray


def test_a_run_that_reads_another_waits_for_it(tmp_path, local_ray):
    source = dataclasses.replace(small_configs(5)[0], save_model=True)
    target = dataclasses.replace(small_configs(6)[0], init_from=source.run_id)
    assert ray_backend.sources_first([target, source]) == [source, target]
    runs = ray_store(tmp_path)
    frame = runs.execute_all([target, source])  # two GPUs free: without the wait both would start at once
    assert list(frame.run_id) == [target.run_id, source.run_id]
    assert "accuracy" in runs.store.metrics(target)["source_after"]


# ----------------------------------------------------------------------------- two nodes on 127.0.0.1
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ray_cli(environment: dict, *args: str) -> None:
    subprocess.run(["ray", *args], env=environment, check=True, capture_output=True, timeout=120)


def raylet_of(temp_dir: str) -> int:
    """The pid of the raylet whose session lives under ``temp_dir``."""
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and command and command[0].endswith(b"raylet") and temp_dir.encode() in b" ".join(command):
            return int(proc.name)
    raise LookupError(f"no raylet with a session under {temp_dir}")


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def stop_nodes(*temp_dirs: str) -> None:
    """Stop the Ray processes of the nodes under ``temp_dirs`` and their children, by pid: ``ray stop`` would
    stop every Ray on the machine, another test session's too."""
    def ours() -> set[int]:
        table = {}
        for proc in Path("/proc").iterdir():
            try:
                table[int(proc.name)] = ((proc / "cmdline").read_bytes(), parent_of(int(proc.name)))
            except (OSError, ValueError):
                continue
        found = {pid for pid, (command, _) in table.items()
                 if pid != os.getpid() and any(d.encode() in command for d in temp_dirs)}
        while grown := {pid for pid, (_, parent) in table.items() if parent in found} - found:
            found |= grown
        return {pid for pid in found if paths.process_alive(pid)}

    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in ours():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while ours() and time.monotonic() < deadline:
            time.sleep(0.1)


@contextlib.contextmanager
def two_node_cluster(environment: dict):
    """A head and a worker node on 127.0.0.1, one CPU each, each with its own temp dir, started with
    ``environment``; yields the address and the worker's temp dir."""
    if ray.is_initialized():
        ray.shutdown()  # the module's private Ray
    port = free_port()
    head, worker = tempfile.mkdtemp(prefix="ray-head-"), tempfile.mkdtemp(prefix="ray-node-")  # short socket paths
    try:
        ray_cli(environment, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                "--num-gpus=0", "--include-dashboard=false", f"--temp-dir={head}", "--disable-usage-stats")
        ray_cli(environment, "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                "--num-gpus=0", f"--temp-dir={worker}")
        yield f"127.0.0.1:{port}", worker
    finally:
        ray.shutdown()
        stop_nodes(head, worker)
        shutil.rmtree(head, ignore_errors=True)
        shutil.rmtree(worker, ignore_errors=True)


@pytest.fixture
def two_nodes():
    """Two nodes without authentication (loopback only)."""
    with two_node_cluster({**os.environ, **RAY_ENV}) as (address, worker):
        yield address, worker


@pytest.fixture
def two_nodes_with_token():
    """Two nodes that accept only callers holding their token (``RAY_AUTH_MODE=token``, the token in
    ``RAY_AUTH_TOKEN``), and the environment a driver needs to join them."""
    environment = {**os.environ, **RAY_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    environment.pop("RAY_AUTH_TOKEN_PATH", None)
    with two_node_cluster(environment) as (address, worker):
        yield address, environment


def kill_node_mid_run(root: Path, raylet: int, killed: list, stop: threading.Event) -> None:
    """Kill the node as soon as one of its workers is writing a run (a temporary folder of its pid): its
    raylet and that worker at once, as a machine that loses power, so that the worker can neither finish
    the run nor clean up after itself, whatever the raylet's death makes it do, and it is gone before
    Ray retries the run elsewhere."""
    while not stop.is_set():
        for tmp in root.glob(".tmp-*"):
            pid = paths.temporary_owner(tmp)[2]
            if parent_of(pid) == raylet:
                os.kill(raylet, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
                killed.append((tmp.name, pid))
                return
        time.sleep(0.02)


def test_a_two_node_cluster_loses_a_node_mid_run_and_every_run_completes_once(tmp_path, two_nodes):
    address, worker_temp = two_nodes
    configs = small_configs(11, 12, 13, 14, epochs=2)
    runs = ray_store(tmp_path / "ray", ray_address=address)
    assert runs.workers() == 2  # one CPU on each node
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=kill_node_mid_run,
                              args=(runs.store.root, raylet_of(worker_temp), killed, stop), daemon=True)
    runs.store.root.mkdir(parents=True)
    killer.start()
    frame = runs.execute_all(configs)
    stop.set()
    killer.join()
    assert killed, "no run started on the worker node"
    folder, pid = killed[0]
    assert not paths.process_alive(pid)  # killed (a zombie here: no init reaps it)
    assert not (runs.store.root / folder).exists()  # removed by the run's next writer or the store's sweep
    inodes = {c.run_id: os.stat(runs.store.folder(c)).st_ino for c in configs}
    time.sleep(1)
    assert {c.run_id: os.stat(runs.store.folder(c)).st_ino for c in configs} == inodes  # nobody wrote a run again
    assert sorted(p.name for p in runs.store.root.iterdir()) == sorted(c.run_id for c in configs)  # no temporary left
    assert list(frame.run_id) == [c.run_id for c in configs] and all(runs.store.is_complete(c) for c in configs)

    serial = Runner(store.RunStore(tmp_path / "serial"), RunOptions(workers=1, progress=False))
    serial.execute_all(configs)  # this process: 1 torch thread (conftest), as each Ray task
    assert stored_metrics(runs, configs) == stored_metrics(serial, configs)


# a driver in its own process, so that the token mode and the token stay out of this one's Ray
TOKEN_DRIVER = """
import json, sys
from fewdims_helpers.config import RunConfig
from fewdims_helpers.options import RunOptions
from fewdims_helpers.runs.store import RunStore
from fewdims_helpers.runs.runner import Runner
configs = [RunConfig.from_dict(c) for c in json.loads(sys.argv[1])]
runs = Runner(RunStore(sys.argv[2]), RunOptions(backend="ray", ray_address=sys.argv[3], progress=False))
print(json.dumps({"workers": runs.workers(), "run_ids": list(runs.execute_all(configs).run_id)}))
"""


def test_a_two_node_cluster_with_token_authentication_runs_for_the_tokens_holder_only(tmp_path, two_nodes_with_token):
    address, environment = two_nodes_with_token
    configs = small_configs(21, 22)
    root = tmp_path / "ray"
    driver = subprocess.run([sys.executable, "-c", TOKEN_DRIVER, json.dumps([c.to_dict() for c in configs]),
                             str(root), address], env=environment, capture_output=True, text=True, timeout=600)
    assert driver.returncode == 0, driver.stderr[-3000:]
    report = json.loads(driver.stdout.strip().splitlines()[-1])
    assert report == {"workers": 2, "run_ids": [c.run_id for c in configs]}  # both nodes joined with the token
    runs = Runner(store.RunStore(root), RunOptions(progress=False))
    serial = Runner(store.RunStore(tmp_path / "serial"), RunOptions(workers=1, progress=False))
    serial.execute_all(configs)
    assert stored_metrics(runs, configs) == stored_metrics(serial, configs)

    # anyone who reaches the port without the token is turned away
    stranger = {k: v for k, v in environment.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    stranger.update(RAY_AUTH_MODE="disabled", HOME=str(tmp_path))  # no token, not even ~/.ray/auth_token
    refused = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={address!r})"], env=stranger,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "Authentication token is missing or incorrect" in refused.stdout + refused.stderr
