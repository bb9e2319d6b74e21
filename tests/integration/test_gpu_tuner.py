"""GPU placement end to end: the real syne-tune ``Tuner`` (and the backend on its
own) with real trial processes, on a fake NVML whose GPUs, memory and foreign
processes change over time.

A trial "allocates" GPU memory by registering its pid with the fake NVML
(:func:`fake_nvml.register_process`); the fake reports the memory while the
process lives, as a driver would. The trial script writes what it saw
(``CUDA_VISIBLE_DEVICES`` among others) into ``seen.json`` in its trial folder.
"""

import itertools
import json
import logging
import subprocess
import sys
import time

import pytest
from fake_nvml import (
    GIB,
    MIB,
    FakeDevice,
    FakeNvml,
    FakeProcess,
    fake_uuid,
    register_process,
)
from syne_tune import StoppingCriterion, Tuner
from syne_tune.config_space import uniform
from syne_tune.optimizer.baselines import RandomSearch
from syne_tune.optimizer.scheduler import SchedulerDecision
from syne_tune.tuner_callback import TunerCallback

from syne_tune_localx import LocalXBackend
from syne_tune_localx.gpu import NvmlInventory

pytestmark = pytest.mark.slow

SCRIPT = r'''
"""A trial that takes fake GPU memory, reports two results and leaves."""
import argparse, json, os, signal, subprocess, sys, time


def register(pid, device, memory):
    path = os.path.join(os.environ["FAKE_NVML_DIR"], f"{pid}.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"pid": pid, "device": device, "memory": memory}, f)
    os.replace(path + ".tmp", path)


def report(iteration, loss):
    line = {"epoch": iteration + 1, "loss": loss, "st_worker_timestamp": time.time(),
            "st_worker_iter": iteration}
    print(f"[tune-metric]: {json.dumps(line)}", flush=True)


parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, default=0.0)
parser.add_argument("--mem_gib", type=float, default=0.0)
parser.add_argument("--child_mem_gib", type=float, default=0.0)
parser.add_argument("--hold", type=float, default=0.5)
parser.add_argument("--linger", type=float, default=0.0)  # seconds after SIGTERM
parser.add_argument("--st_checkpoint_dir")
args, _ = parser.parse_known_args()
trial_dir = os.path.dirname(args.st_checkpoint_dir)
if args.linger:
    def on_term(signum, frame):
        time.sleep(args.linger)  # still alive, still holding its GPU memory
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
seen = {"cvd": cvd, "order": os.environ.get("CUDA_DEVICE_ORDER"), "pid": os.getpid(),
        "start": time.time()}
with open(os.path.join(trial_dir, "seen.json"), "w") as f:
    json.dump(seen, f)
device = cvd.split(",")[0] if cvd else None
child = None
if device and args.mem_gib:
    register(os.getpid(), device, int(args.mem_gib * 2**30))
if device and args.child_mem_gib:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    register(child.pid, device, int(args.child_mem_gib * 2**30))
report(0, args.x)
time.sleep(args.hold)
report(1, args.x / 2)
if child is not None:
    child.kill()
    child.wait()
'''


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "gpu_train.py"
    path.write_text(SCRIPT)
    return path


@pytest.fixture
def nvml_dir(tmp_path, monkeypatch):
    folder = tmp_path / "nvml"
    folder.mkdir()
    monkeypatch.setenv("FAKE_NVML_DIR", str(folder))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return folder


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO, logger="syne_tune_localx")
    return caplog


def gpus(count, memory=80 * GIB):
    return [FakeDevice(uuid=fake_uuid(i), memory_total=memory) for i in range(count)]


def make_backend(script, nvml_dir, devices, **options):
    nvml = FakeNvml(devices, process_dir=nvml_dir)
    backend = LocalXBackend(
        entry_point=str(script),
        gpu_inventory=NvmlInventory(nvml=nvml),
        gpu_poll_interval=options.pop("gpu_poll_interval", 0.1),
        stop_grace_period=options.pop("stop_grace_period", 5),
        **options,
    )
    return backend, nvml


def run_tuner(backend, num_trials, n_workers, scheduler=None, callbacks=(), **space):
    config_space = {"x": uniform(0, 1), "hold": 0.5, **space}
    tuner = Tuner(
        trial_backend=backend,
        scheduler=scheduler or RandomSearch(config_space, metrics=["loss"], random_seed=3),
        stop_criterion=StoppingCriterion(max_num_trials_started=num_trials - 1),
        n_workers=n_workers,
        sleep_time=0.1,
        wait_trial_completion_when_stopping=True,
        callbacks=list(callbacks),
        save_tuner=False,
    )
    tuner.run()
    return tuner


def seen(backend, trial_id):
    return json.loads((backend.trial_path(trial_id) / "seen.json").read_text())


def interval(backend, trial_id):
    """(start as the trial saw it, end as its guard recorded it)"""
    return seen(backend, trial_id)["start"], backend.process_record(trial_id)["end_time"]


def waits_logged(caplog, trial_id):
    prefix = f"trial {trial_id} waits: "
    return [r.getMessage()[len(prefix):] for r in caplog.records if r.getMessage().startswith(prefix)]


class Watch(TunerCallback):
    """Records what the backend says about waiting trials at every loop."""

    def __init__(self, backend):
        self.backend = backend
        self.waiting = []

    def on_loop_start(self):
        self.waiting.append(self.backend.waiting_trials())


def assert_no_gpu_shared(backend, trial_ids):
    by_gpu = {}
    for trial_id in trial_ids:
        by_gpu.setdefault(seen(backend, trial_id)["cvd"], []).append(interval(backend, trial_id))
    for spans in by_gpu.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, spans


# --- Tuner end to end -------------------------------------------------------------


def test_heavy_foreign_gpu_is_skipped_display_server_gpu_takes_trials(
    script, nvml_dir, results_root
):
    devices = gpus(3)
    devices[0].processes = [FakeProcess(pid=4242, memory=78 * GIB)]
    devices[1].processes = [FakeProcess(pid=1001, memory=300 * MIB, kind="graphics")]
    backend, _ = make_backend(
        script, nvml_dir, devices, gpu_min_free_memory="4GiB", trials_per_gpu=1
    )
    run_tuner(backend, num_trials=4, n_workers=2)
    trial_ids = sorted(backend._trial_dict)
    assert len(trial_ids) >= 4
    placed = [seen(backend, t)["cvd"] for t in trial_ids]
    assert "0" not in placed
    assert set(placed) == {"1", "2"}  # the display server's GPU is used
    assert all(seen(backend, t)["order"] == "PCI_BUS_ID" for t in trial_ids)
    assert_no_gpu_shared(backend, trial_ids)
    report = backend.gpu_placement_report()
    assert report[0]["reason"].startswith("78.0 GiB used by a foreign process (pid 4242)")
    assert report[1]["reason"] is None and report[2]["reason"] is None


def test_trials_started_together_with_memory_requests_land_on_different_gpus(
    script, nvml_dir, results_root, log
):
    backend, _ = make_backend(script, nvml_dir, gpus(2, memory=16 * GIB),
                              gpu_memory_per_trial="10GiB")  # fmt: skip
    # the three first trials are started in one go, before NVML shows any of them;
    # each really takes 6 GiB itself and 2 GiB in a child process
    run_tuner(backend, num_trials=3, n_workers=3, mem_gib=6, child_mem_gib=2, hold=0.8)
    assert [seen(backend, t)["cvd"] for t in (0, 1)] == ["0", "1"]
    # sharing is allowed, but 16 - 10 booked < 10: trial 2 waited for a GPU
    (reason,) = waits_logged(log, 2)
    assert reason == (
        "no GPU can take it: GPU 0: 10.0 GiB booked by trial 0, 6.0 GiB free, needs 10.0 GiB; "
        "GPU 1: 10.0 GiB booked by trial 1, 6.0 GiB free, needs 10.0 GiB"
    )
    first_end = min(interval(backend, t)[1] for t in (0, 1))
    assert seen(backend, 2)["start"] >= first_end
    # accounting: peak summed over the trial's process tree, in gpu.json and the API
    for trial_id in (0, 1, 2):
        usage = json.loads((backend.trial_path(trial_id) / "gpu.json").read_text())
        assert usage == backend.trial_gpu_usage(trial_id)
        assert usage["peak_memory_bytes"] == 8 * GIB, usage
        assert usage["memory_request_bytes"] == 10 * GIB
        (gpu,) = usage["gpus"]
        assert gpu["cuda_id"] == seen(backend, trial_id)["cvd"]
        assert gpu["peak_memory_bytes"] == 8 * GIB and usage["samples"] >= 1


def test_more_workers_than_gpus_wait_with_the_gpus_named(script, nvml_dir, results_root, log):
    backend, nvml = make_backend(script, nvml_dir, gpus(2), trials_per_gpu=1)
    watch = Watch(backend)
    began = time.monotonic()
    run_tuner(backend, num_trials=4, n_workers=4, callbacks=[watch])
    took = time.monotonic() - began
    trial_ids = sorted(backend._trial_dict)
    assert_no_gpu_shared(backend, trial_ids)
    # logged once per change, not at every poll
    reasons = waits_logged(log, 2)
    assert reasons == ["no GPU can take it: GPU 0: in use by trial 0; GPU 1: in use by trial 1"]
    assert 1 <= len(waits_logged(log, 3)) <= 2
    assert len(watch.waiting) > 5  # many polls happened meanwhile
    # waiting_trials() said the same while they waited
    assert any(
        w.get(2) == reasons[0] and "GPU 0" in w.get(3, "") and "GPU 1" in w.get(3, "")
        for w in watch.waiting
    )
    # trials_per_gpu alone needs one NVML reading for placement; the rest is
    # accounting, at most one per poll interval (0.1 s here)
    assert nvml.init_calls <= took / 0.1 + 2


class StopTrialZero(RandomSearch):
    def on_trial_result(self, trial, result):
        if trial.trial_id == 0:
            return SchedulerDecision.STOP
        return super().on_trial_result(trial, result)


def test_freed_gpu_is_reused_only_after_the_stopped_process_is_gone(
    script, nvml_dir, results_root, log
):
    backend, _ = make_backend(script, nvml_dir, gpus(1), trials_per_gpu=1,
                              gpu_min_free_memory="4GiB")  # fmt: skip
    space = {"x": uniform(0, 1), "hold": 1.5, "linger": 1.0, "mem_gib": 70}
    scheduler = StopTrialZero(space, metrics=["loss"], random_seed=1)
    run_tuner(backend, num_trials=2, n_workers=2, scheduler=scheduler, **space)
    record = backend.process_record(0)
    assert record["stop_requested"] and record["exit_code"] == 0
    # trial 0 ignored the stop for a second; its GPU stayed its own meanwhile
    assert seen(backend, 1)["start"] >= record["end_time"]
    assert seen(backend, 1)["cvd"] == "0"
    assert waits_logged(log, 1)[0] == "no GPU can take it: GPU 0: in use by trial 0"
    assert backend.trial_gpu_usage(0)["peak_memory_bytes"] == 70 * GIB


def test_trial_waits_for_a_foreign_process_to_leave(script, nvml_dir, results_root, log):
    launched = time.time()
    foreign = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    try:
        register_process(nvml_dir, foreign.pid, fake_uuid(0), 75 * GIB)
        backend, _ = make_backend(script, nvml_dir, gpus(1), gpu_min_free_memory="10GiB")
        run_tuner(backend, num_trials=1, n_workers=1)
    finally:
        foreign.kill()
        foreign.wait()
    (reason,) = waits_logged(log, 0)
    assert reason == (
        f"no GPU can take it: GPU 0: 75.0 GiB used by a foreign process (pid {foreign.pid}), "
        f"5.0 GiB free, needs 10.0 GiB"
    )
    assert seen(backend, 0)["cvd"] == "0"
    assert seen(backend, 0)["start"] >= launched + 1.5  # not before the foreign process left


# --- the backend on its own ----------------------------------------------------------


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_stopping_a_waiting_trial_cancels_it_cleanly(script, nvml_dir, tmp_path):
    backend, _ = make_backend(script, nvml_dir, gpus(1), trials_per_gpu=1)
    backend.set_path(str(tmp_path / "results"))
    try:
        backend.start_trial({"hold": 1.0})
        backend.start_trial({"hold": 0.1})
        assert backend.waiting_trials() == {1: "no GPU can take it: GPU 0: in use by trial 0"}
        assert {t for t, _ in backend.busy_trial_ids()} == {0, 1}
        backend.stop_trial(1)
        assert backend.waiting_trials() == {}
        assert {t for t, _ in backend.busy_trial_ids()} == {0}
        statuses, _ = backend.fetch_status_results([0, 1])
        assert statuses[1][1] == "Stopped"
        assert not (backend.trial_path(1) / "seen.json").exists()
        assert backend.trial_gpu_usage(1) is None
        assert backend.gpu_placement_report()[0]["trials"] == [0]
        # the next trial gets the GPU once trial 0 is done, not the cancelled one
        backend.start_trial({"hold": 0.1})
        wait_until(lambda: backend.busy_trial_ids() == [])  # polls: starts trial 2
        assert seen(backend, 2)["cvd"] == "0"
        assert not (backend.trial_path(1) / "seen.json").exists()
    finally:
        backend.stop_all()


def test_cpu_only_trials_see_no_gpu(script, nvml_dir, tmp_path):
    backend, _ = make_backend(script, nvml_dir, gpus(2), num_gpus_per_trial=0, trials_per_gpu=1)
    backend.set_path(str(tmp_path / "results"))
    try:
        for _ in range(3):  # more than GPUs, none waits
            backend.start_trial({"hold": 0.1})
        assert backend.waiting_trials() == {}
        wait_until(lambda: backend.busy_trial_ids() == [])
        for trial_id in range(3):
            assert seen(backend, trial_id)["cvd"] == ""
            assert not (backend.trial_path(trial_id) / "gpu.json").exists()
    finally:
        backend.stop_all()


def test_trial_process_ids_cover_the_process_tree(script, nvml_dir, tmp_path):
    backend, _ = make_backend(script, nvml_dir, gpus(1))
    backend.set_path(str(tmp_path / "results"))
    try:
        backend.start_trial({"hold": 3.0, "child_mem_gib": 1})
        wait_until(lambda: len(list(nvml_dir.glob("*.json"))) == 1)
        (entry,) = [json.loads(p.read_text()) for p in nvml_dir.glob("*.json")]
        pids = backend.trial_process_ids(0)
        trial_pid = seen(backend, 0)["pid"]
        assert {backend._runs[0].process.pid, trial_pid, entry["pid"]} <= pids
        assert backend.trial_process_ids(42) == set()
    finally:
        backend.stop_all()
    assert backend.trial_process_ids(0) == set()
