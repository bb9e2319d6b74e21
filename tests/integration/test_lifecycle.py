"""The life cycle of trials under :class:`LocalXBackend`, with real processes:
pause and resume, stop, malformed metrics in a Tuner run, a tuner killed with
SIGKILL and resumed from its saved state, bad launches, environment, working
folders and pickling.

Trials are ``tests/scripts/backend_trial.py`` (standard library only); the
killed tuner is ``tests/scripts/crash_tuner.py``.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dill
import pytest
from proc_helpers import proc_state, wait_for

from syne_tune_localx import LocalXBackend
from syne_tune_localx.backend import THREAD_VARIABLES
from syne_tune_localx.errors import ConfigurationError, LaunchError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TRIAL = str(SCRIPTS / "backend_trial.py")
CRASH_TUNER = str(SCRIPTS / "crash_tuner.py")

# syne-tune's status strings, spelled out so the test does not depend on how
# the package imports them
IN_PROGRESS, STOPPING, STOPPED, PAUSED = "InProgress", "Stopping", "Stopped", "Paused"
COMPLETED, FAILED = "Completed", "Failed"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
@pytest.fixture
def make_backend(tmp_path):
    """Backends on the trial script, each in a folder of its own; every trial
    still running at the end of the test is stopped."""
    backends = []

    def make(**kwargs):
        kwargs.setdefault("stop_grace_period", 1.0)
        backend = LocalXBackend(entry_point=TRIAL, **kwargs)
        backend.set_path(str(tmp_path / f"experiment-{len(backends)}"))
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        backend._end_all_processes()


class Collector:
    """Fetches statuses and new results the way the Tuner does."""

    def __init__(self, backend):
        self.backend = backend
        self.results: dict[int, list[dict]] = {}

    def poll(self) -> dict[int, str]:
        statuses, results = self.backend.fetch_status_results(list(self.backend.trial_ids))
        for trial_id, result in results:
            self.results.setdefault(trial_id, []).append(result)
        return {trial_id: status for trial_id, (_, status) in statuses.items()}

    def epochs(self, trial_id: int) -> list[int]:
        return [r["epoch"] for r in self.results.get(trial_id, [])]

    def wait(self, predicate, timeout=15.0, what="condition") -> dict[int, str]:
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.poll()
            if predicate(statuses):
                return statuses
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}: statuses {statuses}, "
                    f"epochs {{{', '.join(f'{t}: {self.epochs(t)}' for t in self.results)}}}"
                )
            time.sleep(0.02)


def trial_alive(pid: int) -> bool:
    """A live (not zombie) process running the trial script."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return b"backend_trial.py" in cmdline and proc_state(pid) not in (None, "Z", "X")


def read_pid_files(pid_dir: Path) -> list[dict]:
    infos = []
    for path in sorted(pid_dir.glob("*.json")):
        try:
            infos.append(json.loads(path.read_text()))
        except ValueError:
            continue  # being written
    return infos


# ---------------------------------------------------------------------------
# pause, resume, stop
# ---------------------------------------------------------------------------
def test_pause_writes_a_checkpoint_and_resume_continues_from_it(make_backend):
    backend = make_backend(stop_grace_period=5.0)
    backend.start_trial({"epochs": 1000, "epoch_time": 0.05, "on_term": "checkpoint"})
    collector = Collector(backend)
    collector.wait(lambda s: len(collector.epochs(0)) >= 3, what="three epochs")

    t0 = time.monotonic()
    backend.pause_trial(0)
    assert collector.poll()[0] == PAUSED
    wait_for(lambda: backend.busy_trial_ids() == [], what="the paused trial to end")
    assert time.monotonic() - t0 < 4.0, "the trial was killed instead of ending on SIGTERM"
    state = backend.checkpoint_trial_path(0) / "state.json"
    assert state.is_file(), "no checkpoint written on pause"
    saved = json.loads(state.read_text())["epoch"]
    before_pause = collector.epochs(0)
    assert before_pause == list(range(1, len(before_pause) + 1))
    assert len(before_pause) <= saved
    assert collector.poll()[0] == PAUSED
    assert collector.epochs(0) == before_pause  # nothing leaks while paused

    config = dict(backend._trial_dict[0].config, epochs=saved + 3)
    backend.resume_trial(0, new_config=config)
    statuses = collector.wait(lambda s: s[0] == COMPLETED, what="the resumed trial to complete")
    assert statuses[0] == COMPLETED
    assert collector.epochs(0) == before_pause + [saved + 1, saved + 2, saved + 3]
    assert [m["epoch"] for m in backend._trial_dict[0].metrics] == collector.epochs(0)

    log = "".join(backend.stdout(0))
    assert log.startswith("started from scratch\n"), "std.out was truncated on resume"
    assert f"checkpointed at epoch {saved}\n" in log
    assert log.index("checkpointed at epoch") < log.index(f"resumed from epoch {saved}\n")
    record = backend.process_record(0)
    assert record["attempt"] == 1 and record["exit_code"] == 0


def test_resume_right_after_pause_waits_for_the_checkpoint(make_backend):
    """No wait between pause and resume: the new process must not start before
    the old one wrote its checkpoint and ended."""
    backend = make_backend(stop_grace_period=5.0)
    backend.start_trial({"epochs": 1000, "epoch_time": 0.05, "on_term": "checkpoint"})
    collector = Collector(backend)
    collector.wait(lambda s: len(collector.epochs(0)) >= 2, what="two epochs")
    backend.pause_trial(0)
    backend.resume_trial(0)
    # the checkpoint is there when resume_trial returns
    saved = json.loads((backend.checkpoint_trial_path(0) / "state.json").read_text())["epoch"]
    before = list(collector.epochs(0))
    collector.wait(lambda s: len(collector.epochs(0)) > len(before), what="a resumed epoch")
    assert collector.epochs(0)[len(before)] == saved + 1
    assert sum(1 for line in backend.stdout(0) if line.startswith("started from scratch")) == 1
    assert backend.busy_trial_ids() == [(0, IN_PROGRESS)]


def test_stop_returns_at_once_and_the_trial_is_killed_after_the_grace_period(make_backend):
    grace = 1.0
    backend = make_backend(stop_grace_period=grace)
    backend.start_trial({"epochs": 1000, "epoch_time": 0.05, "on_term": "ignore"})
    collector = Collector(backend)
    collector.wait(lambda s: len(collector.epochs(0)) >= 1, what="a first epoch")
    pid = json.loads((backend.trial_path(0) / "info.json").read_text())["pid"]

    t0 = time.monotonic()
    backend.stop_trial(0)
    assert time.monotonic() - t0 < 0.3, "stop_trial waited for the trial"
    assert collector.poll()[0] == STOPPED
    assert backend.busy_trial_ids() == [(0, STOPPING)]
    assert trial_alive(pid)

    seen = []
    while time.monotonic() - t0 < grace + 4:
        busy = backend.busy_trial_ids()
        seen.append(busy)
        if not busy:
            break
        time.sleep(0.02)
    gone_after = time.monotonic() - t0
    assert seen[-1] == [], "the trial outlived the grace period by seconds"
    assert all(b == [(0, STOPPING)] for b in seen[:-1])
    assert gone_after >= grace, f"killed after {gone_after:.2f} s, before the grace period"
    assert not trial_alive(pid)
    assert collector.poll()[0] == STOPPED
    record = backend.process_record(0)
    assert record["signal"] == "SIGKILL"
    assert "ignoring SIGTERM" in "".join(backend.stdout(0))


def test_stop_all_ends_every_trial(make_backend):
    backend = make_backend(stop_grace_period=0.5)
    for on_term in ("default", "ignore", "checkpoint"):
        backend.start_trial({"epochs": 1000, "epoch_time": 0.05, "on_term": on_term})
    collector = Collector(backend)
    collector.wait(lambda s: all(collector.epochs(t) for t in range(3)), what="epochs")
    pids = [json.loads((backend.trial_path(t) / "info.json").read_text())["pid"] for t in range(3)]
    backend.stop_all()
    assert not any(trial_alive(pid) for pid in pids)
    assert backend.busy_trial_ids() == []
    assert set(collector.poll().values()) == {STOPPED}


# ---------------------------------------------------------------------------
# a Tuner run with malformed metric lines
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_malformed_metric_lines_do_not_stop_a_tuner_run(make_backend, tmp_path, monkeypatch, caplog):
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.config_space import uniform
    from syne_tune.optimizer.baselines import RandomSearch
    from syne_tune.results_callback import StoreResultsCallback
    from syne_tune.tuner_callback import TunerCallback

    class Recorder(TunerCallback):
        def __init__(self):
            self.results = []

        def on_trial_result(self, trial, status, result, decision):
            self.results.append((trial.trial_id, result["epoch"]))

    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "syne-tune"))
    caplog.set_level(logging.WARNING, logger="syne_tune_localx.metrics")
    epochs = 4
    config_space = {"x": uniform(0.0, 1.0), "epochs": epochs, "epoch_time": 0.05, "bad_metrics": 1}
    backend = make_backend()
    recorder = Recorder()
    tuner = Tuner(
        trial_backend=backend,
        scheduler=RandomSearch(config_space, metrics=["loss"], random_seed=3),
        stop_criterion=StoppingCriterion(max_num_trials_completed=2),
        n_workers=2,
        sleep_time=0.05,
        results_update_interval=0.5,
        print_update_interval=1000.0,
        callbacks=[StoreResultsCallback(), recorder],
        tuner_name="localx-malformed",
    )
    tuner.run()

    statuses = {t: backend._trial_dict[t].status for t in backend.trial_ids}
    completed = [t for t, s in statuses.items() if s == COMPLETED]
    assert len(completed) >= 3, statuses
    assert FAILED not in statuses.values()
    for trial_id in backend.trial_ids:
        seen = [e for t, e in recorder.results if t == trial_id]
        if trial_id in completed:
            assert seen == list(range(1, epochs + 1)), (trial_id, seen)
        else:
            assert seen == list(range(1, len(seen) + 1)), (trial_id, seen)
    skipped = [r.getMessage() for r in caplog.records if "malformed metric" in r.getMessage()]
    # two malformed lines per epoch of every completed trial, each warned once
    for trial_id in completed:
        assert sum(f"trial {trial_id}:" in m for m in skipped) == 2 * epochs


# ---------------------------------------------------------------------------
# a tuner killed with SIGKILL
# ---------------------------------------------------------------------------
def saved_trials(path: Path) -> int:
    """Number of trials in a saved tuner; -1 if it is missing or half written."""
    try:
        with open(path, "rb") as f:
            return len(dill.load(f).trial_backend.trial_ids)
    except (OSError, EOFError, dill.UnpicklingError, ValueError, AttributeError):
        return -1


def crash_a_tuner(tmp_path: Path, grace: float):
    """Run ``crash_tuner.py`` until both workers run a trial and the tuner has
    saved itself with both, then SIGKILL it. Returns the experiment folder and
    the trials' pid files."""
    syne_tune_folder = tmp_path / "syne-tune"
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    env = dict(os.environ, SYNETUNE_FOLDER=str(syne_tune_folder))
    env.pop("LOCALX_TEST_EPOCHS", None)
    with open(tmp_path / "tuner.log", "w") as log:
        tuner = subprocess.Popen(
            [sys.executable, CRASH_TUNER, TRIAL, str(pid_dir), str(grace)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    experiment = syne_tune_folder / "localx-crash"
    try:
        wait_for(
            lambda: len(read_pid_files(pid_dir)) == 2 or tuner.poll() is not None,
            timeout=60,
            what="two trials",
        )
        assert tuner.poll() is None, (tmp_path / "tuner.log").read_text()
        # stop the tuner where it stands, and kill it once its saved state
        # (written without a temporary file) reads back with both trials
        deadline = time.monotonic() + 20
        while True:
            time.sleep(0.3)
            tuner.send_signal(signal.SIGSTOP)
            if saved_trials(experiment / "tuner.dill") == 2:
                break
            assert time.monotonic() < deadline, "the tuner never saved both trials"
            tuner.send_signal(signal.SIGCONT)
    finally:
        tuner.kill()
        tuner.wait()
    infos = read_pid_files(pid_dir)
    assert len(infos) == 2
    return experiment, pid_dir, infos


@pytest.mark.slow
def test_a_tuner_killed_with_sigkill_leaves_no_trial_alive(tmp_path):
    grace = 1.0
    experiment, _, infos = crash_a_tuner(tmp_path, grace)
    pids = [info["pid"] for info in infos]
    guards = [info["ppid"] for info in infos]
    wait_for(lambda: not any(map(trial_alive, pids)), timeout=grace + 4, what=f"trials {pids}")
    wait_for(
        lambda: all(proc_state(g) in (None, "Z") for g in guards), timeout=3, what="the guards"
    )
    for info in infos:
        record = json.loads((experiment / info["trial_id"] / "process.json").read_text())
        assert record["pid"] == info["pid"]
        assert record["stop_requested"] is not None
        assert record["signal"] == "SIGKILL"  # the trials ignore SIGTERM


@pytest.mark.slow
def test_a_tuner_resumed_after_a_crash_ends_the_orphans_first(tmp_path, monkeypatch):
    from syne_tune import Tuner

    grace = 1.5
    experiment, pid_dir, infos = crash_a_tuner(tmp_path, grace)
    old_ids = sorted(int(info["trial_id"]) for info in infos)

    # count live trials, old and new, from now until the resumed run ends
    most_alive = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            alive = sum(trial_alive(info["pid"]) for info in read_pid_files(pid_dir))
            most_alive[0] = max(most_alive[0], alive)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    monkeypatch.setenv("SYNETUNE_FOLDER", str(experiment.parent))
    monkeypatch.setenv("LOCALX_TEST_EPOCHS", "3")  # new trials finish quickly
    try:
        tuner = Tuner.load(str(experiment))
        backend = tuner.trial_backend
        assert sorted(backend.trial_ids) == old_ids
        tuner.run()
    finally:
        done.set()
        sampler.join()
    assert most_alive[0] <= tuner.n_workers == 2

    # the resumed Tuner never asks about trials it did not start; the backend
    # reports them failed when asked
    trial_status, _ = backend.fetch_status_results(list(backend.trial_ids))
    statuses = {t: status for t, (_, status) in trial_status.items()}
    for trial_id in old_ids:
        assert statuses[trial_id] == FAILED, statuses
        assert backend.process_record(trial_id)["stop_requested"] is not None
    new = [t for t in backend.trial_ids if t not in old_ids]
    assert sum(statuses[t] == COMPLETED for t in new) >= 3, statuses
    assert not any(trial_alive(info["pid"]) for info in read_pid_files(pid_dir))


# ---------------------------------------------------------------------------
# bad launches
# ---------------------------------------------------------------------------
def test_missing_entry_point_is_a_configuration_error(tmp_path):
    missing = tmp_path / "no such dir" / "train.py"
    with pytest.raises(ConfigurationError) as info:
        LocalXBackend(entry_point=str(missing))
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("binary", ["/no/such/dir/python3", "localx-no-such-program-x7"])
def test_missing_binary_is_a_configuration_error(binary):
    with pytest.raises(ConfigurationError) as info:
        LocalXBackend(entry_point=TRIAL, binary=binary)
    assert binary in str(info.value)


def test_unwritable_results_folder_is_a_launch_error_and_leaves_nothing(make_backend, tmp_path):
    backend = make_backend()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    backend.set_path(str(blocker / "results"))
    with pytest.raises(LaunchError) as info:
        backend.start_trial({"epochs": 1, "epoch_time": 0.0})
    assert str(blocker) in str(info.value)
    assert backend.trial_ids == []
    assert backend._trial_dict == {}
    assert backend.busy_trial_ids() == []
    backend.stop_all()
    # the backend is as if never asked: a writable folder gets trial 0
    backend.set_path(str(tmp_path / "writable"))
    trial = backend.start_trial({"epochs": 1, "epoch_time": 0.0})
    assert trial.trial_id == 0
    Collector(backend).wait(lambda s: s[0] == COMPLETED, what="trial 0 to complete")


def test_a_launch_refused_after_acceptance_leaves_nothing(make_backend, tmp_path):
    # gpus_to_use is checked against the GPUs at the first launch, after the trial
    # was counted as unfinished; it once stayed counted and busy_trial_ids() raised
    from fake_nvml import FakeNvml

    from syne_tune_localx.gpu import NvmlInventory

    backend = make_backend(gpu_inventory=NvmlInventory(nvml=FakeNvml(1)), gpus_to_use=[3])
    with pytest.raises(ConfigurationError, match="gpus_to_use"):
        backend.start_trial({"epochs": 1, "epoch_time": 0.0})
    assert backend.trial_ids == [] and backend.waiting_trials() == {}
    assert backend.busy_trial_ids() == []
    backend.stop_all()
    assert backend.new_trial_id() == 0


# ---------------------------------------------------------------------------
# environment and working folders
# ---------------------------------------------------------------------------
def test_importing_the_package_changes_no_environment_variable(tmp_path):
    code = (
        "import json, os\n"
        "before = dict(os.environ)\n"
        "import syne_tune_localx\n"
        "import syne_tune_localx.backend\n"
        "from syne_tune_localx import LocalXBackend\n"
        "print(json.dumps([before, dict(os.environ)]))\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    before, after = json.loads(out.stdout.splitlines()[-1])
    assert "OMP_NUM_THREADS" not in before
    assert after == before


@pytest.mark.parametrize(
    "tuner_value, threads_per_trial, expected",
    [(None, None, "1"), (None, 3, "3"), ("7", None, "7"), ("7", 3, "3")],
)
def test_thread_variables_of_trials_leave_the_tuner_alone(
    make_backend, monkeypatch, tuner_value, threads_per_trial, expected
):
    for name in THREAD_VARIABLES:
        if tuner_value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, tuner_value)
    before = dict(os.environ)
    backend = make_backend(threads_per_trial=threads_per_trial)
    backend.start_trial({"epochs": 1, "epoch_time": 0.0})
    Collector(backend).wait(lambda s: s[0] == COMPLETED, what="the trial to complete")
    info = json.loads((backend.trial_path(0) / "info.json").read_text())
    assert info["env"] == {name: expected for name in THREAD_VARIABLES}
    assert dict(os.environ) == before


def test_separate_working_dirs_give_each_trial_its_own_cwd(make_backend):
    backend = make_backend(separate_working_dirs=True)
    for _ in range(2):
        backend.start_trial({"epochs": 1, "epoch_time": 0.0, "write_relative": 1})
    Collector(backend).wait(lambda s: set(s.values()) == {COMPLETED}, what="two trials")
    cwds = set()
    for trial_id in (0, 1):
        info = json.loads((backend.trial_path(trial_id) / "info.json").read_text())
        workdir = Path(info["cwd"])
        cwds.add(workdir)
        assert workdir.resolve().parent == backend.trial_path(trial_id).resolve()
        assert (workdir / "out.txt").read_text() == str(trial_id)
    assert len(cwds) == 2


def test_trials_share_the_tuner_cwd_by_default(make_backend, tmp_path, monkeypatch):
    cwd = tmp_path / "tuner-cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    backend = make_backend()
    backend.start_trial({"epochs": 1, "epoch_time": 0.0, "write_relative": 1})
    Collector(backend).wait(lambda s: s[0] == COMPLETED, what="the trial to complete")
    info = json.loads((backend.trial_path(0) / "info.json").read_text())
    assert Path(info["cwd"]).resolve() == cwd.resolve()
    assert (cwd / "out.txt").read_text() == "0"


# ---------------------------------------------------------------------------
# pickling (Tuner.save)
# ---------------------------------------------------------------------------
def test_dill_round_trip_with_running_trials_keeps_the_live_backend_working(make_backend):
    backend = make_backend()
    epochs = 8
    for _ in range(2):
        backend.start_trial({"epochs": epochs, "epoch_time": 0.05})
    collector = Collector(backend)
    collector.wait(lambda s: collector.epochs(0) and collector.epochs(1), what="first epochs")

    data = dill.dumps(backend)
    copy = dill.loads(data)
    assert copy.trial_ids == [0, 1]
    assert copy.trial_path(1) == backend.trial_path(1)
    assert copy.stop_grace_period == backend.stop_grace_period

    # the live backend goes on: results arrive once, trials complete, a new
    # trial starts and stops
    statuses = collector.wait(lambda s: set(s.values()) == {COMPLETED}, what="completion")
    assert statuses == {0: COMPLETED, 1: COMPLETED}
    for trial_id in (0, 1):
        assert collector.epochs(trial_id) == list(range(1, epochs + 1))
    backend.start_trial({"epochs": 1000, "epoch_time": 0.05})
    collector.wait(lambda s: collector.epochs(2), what="trial 2 running")
    backend.stop_trial(2)
    wait_for(lambda: backend.busy_trial_ids() == [], what="trial 2 to end")
    assert collector.poll()[2] == STOPPED
    dill.dumps(backend)  # and pickles again after all of it


def test_a_copy_loaded_elsewhere_does_not_touch_a_live_tuners_trials(make_backend, tmp_path):
    """Tuner.load(...) in a second process while the first tuner runs: its
    start_trial once reused the live trial IDs (renaming their folders) and its
    stop_all once SIGTERMed the live trials."""
    backend = make_backend()
    backend.start_trial({"epochs": 1000, "epoch_time": 0.05})
    collector = Collector(backend)
    collector.wait(lambda s: collector.epochs(0), what="trial 0 running")
    saved = tmp_path / "backend.dill"
    saved.write_bytes(dill.dumps(backend))
    script = (
        "import dill, sys\n"
        "from syne_tune_localx.errors import LaunchError\n"
        "copy = dill.loads(open(sys.argv[1], 'rb').read())\n"
        "print(sorted(copy.busy_trial_ids()))\n"
        "for action in (lambda: copy.start_trial({'epochs': 1}), copy.stop_all,\n"
        "               lambda: copy.stop_trial(0)):\n"
        "    try:\n"
        "        action()\n"
        "        print('acted')\n"
        "    except LaunchError as err:\n"
        "        print('refused:', err)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(saved)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "[(0, 'InProgress')]"
    assert len(lines) == 4 and all(line.startswith("refused:") for line in lines[1:]), lines
    assert f"pid {os.getpid()}" in lines[1] and "Stop that tuner first" in lines[1]
    # the live trial was not touched, its folder not renamed
    assert backend.busy_trial_ids() == [(0, "InProgress")]
    assert not list(backend.trial_path(0).parent.glob("0.stale-*"))
    before = len(collector.epochs(0))
    collector.wait(lambda s: len(collector.epochs(0)) > before + 2, what="trial 0 to go on")


def test_metrics_printed_without_timestamp_still_arrive(tmp_path):
    """TrialBackend.fetch_status_results sorts results by st_worker_timestamp; a
    hand-printed metric line without it once ended the tuning with KeyError."""
    script = tmp_path / "bare.py"
    script.write_text(
        "print('[tune-metric]: {\"epoch\": 1, \"loss\": 2.0}')\n"
        "print('[tune-metric]: {\"epoch\": 2, \"loss\": 1.0, \"st_worker_timestamp\": \"x\"}')\n"
    )
    backend = LocalXBackend(entry_point=str(script))
    backend.set_path(str(tmp_path / "results"))
    backend.start_trial({})
    results = []
    deadline = time.monotonic() + 20
    while len(results) < 2 and time.monotonic() < deadline:
        _, new = backend.fetch_status_results([0])
        results.extend(new)
        time.sleep(0.05)
    assert [r["epoch"] for _, r in results] == [1, 2]
    assert all(isinstance(r["st_worker_timestamp"], float) for _, r in results)
    backend.stop_all()


def test_the_checkpoint_folder_exists_when_the_trial_starts(tmp_path):
    script = tmp_path / "writes.py"
    script.write_text(
        "import sys, os\n"
        "folder = sys.argv[-1].split('=', 1)[1]\n"
        "open(os.path.join(folder, 'model.txt'), 'w').write('ok')\n"
    )
    backend = LocalXBackend(entry_point=str(script))
    backend.set_path(str(tmp_path / "results"))
    backend.start_trial({})
    wait_for(lambda: backend.process_record(0) is not None, what="the trial to end")
    assert backend.process_record(0)["exit_code"] == 0, backend.stderr(0)
    assert (backend.checkpoint_trial_path(0) / "model.txt").read_text() == "ok"


def test_a_reused_results_folder_does_not_leak_into_new_trials(make_backend, tmp_path, caplog):
    backend = make_backend()
    for trial_id in (0, 1):
        old = backend.trial_path(trial_id)
        (old / "checkpoints").mkdir(parents=True)
        (old / "checkpoints" / "state.json").write_text('{"epoch": 99}')
        (old / "std.out").write_text('[tune-metric]: {"epoch": 99, "loss": 0.0, "st_worker_timestamp": 1.0}\n')
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            backend.start_trial({"epochs": 2, "epoch_time": 0.0, "on_term": "checkpoint"})
    collector = Collector(backend)
    collector.wait(lambda s: set(s.values()) == {COMPLETED}, what="both trials to complete")
    assert collector.epochs(0) == [1, 2] and collector.epochs(1) == [1, 2]
    assert len(list(backend.trial_path(0).parent.glob("*.stale-*"))) == 2
    # one warning for the folder, not one per trial
    assert len([r for r in caplog.records if "already exists" in r.getMessage()]) == 1


def test_a_second_ctrl_c_while_stopping_kills_at_once(make_backend, monkeypatch):
    backend = make_backend(stop_grace_period=30.0)
    backend.start_trial({"epochs": 1000, "epoch_time": 0.05, "on_term": "ignore"})
    collector = Collector(backend)
    collector.wait(lambda s: collector.epochs(0), what="trial 0 running")
    process = backend._runs[0].process
    real_wait = type(process).wait
    calls = []

    def interrupted_wait(self, timeout):
        if not calls:
            calls.append(timeout)
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(type(process), "wait", interrupted_wait)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        backend.stop_all()
    assert time.monotonic() - started < 10  # not the 30 s grace period
    assert backend.busy_trial_ids() == []
    assert backend.process_record(0)["signal"] == "SIGKILL"


def test_a_second_tuner_on_the_same_folder_is_refused(make_backend, tmp_path):
    """Two tuners with the same results folder (suffix_tuner_name=False): the second
    once moved the first one's live trial folders aside, and the first then read
    the second's output as its own."""
    backend = make_backend()
    backend.start_trial({"epochs": 1000, "epoch_time": 0.05})
    collector = Collector(backend)
    collector.wait(lambda s: collector.epochs(0), what="trial 0 running")
    script = (
        "import sys\n"
        "from syne_tune_localx import LocalXBackend\n"
        "from syne_tune_localx.errors import LaunchError\n"
        "other = LocalXBackend(entry_point=sys.argv[1])\n"
        "other.set_path(sys.argv[2])\n"
        "try:\n"
        "    other.start_trial({'epochs': 1})\n"
        "    print('started')\n"
        "except LaunchError as err:\n"
        "    print('refused:', err)\n"
    )
    root = str(backend.trial_path(0).parent)
    done = subprocess.run([sys.executable, "-c", script, TRIAL, root], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:"), done.stdout
    assert f"in use by another tuner (pid {os.getpid()})" in done.stdout
    assert not list(backend.trial_path(0).parent.glob("0.stale-*"))
    before = len(collector.epochs(0))
    collector.wait(lambda s: len(collector.epochs(0)) > before + 2, what="trial 0 to go on")
    # once that trial has ended, the folder may be reused (its trials are moved aside)
    backend.stop_trial(0)
    wait_for(lambda: backend.busy_trial_ids() == [], what="trial 0 to end")
    done = subprocess.run([sys.executable, "-c", script, TRIAL, root], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.stdout.startswith("started"), done.stdout + done.stderr
