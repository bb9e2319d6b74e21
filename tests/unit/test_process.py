"""Tests of :mod:`syne_tune_localx.process` and the guard it runs
(:mod:`syne_tune_localx._guard`), with real processes and signals (Linux).

Trials are ``tests/scripts/proc_trial.py``; they write files that tell the
test what they saw (``ready`` once their signal handlers are in place).
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from proc_helpers import proc_state, wait_for

from syne_tune_localx.process import LaunchSpec, TrialProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

SCRIPT = str(Path(__file__).resolve().parents[1] / "scripts" / "proc_trial.py")
GRACE = 1.0


def make_spec(tmp_path: Path, *args, grace=GRACE, attempt=0, argv=None, **kwargs) -> LaunchSpec:
    trial = tmp_path / "trial"
    out = tmp_path / "out"
    trial.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    return LaunchSpec(
        trial_id=0,
        attempt=attempt,
        argv=argv if argv is not None else [sys.executable, SCRIPT, args[0], str(out), *args[1:]],
        env=kwargs.pop("env", {}),
        trial_path=str(trial),
        stdout=str(trial / "std.out"),
        stderr=str(trial / "std.err"),
        record=str(trial / "process.json"),
        grace_period=grace,
        **kwargs,
    )


def started(spec: LaunchSpec) -> TrialProcess:
    process = TrialProcess(spec)
    process.start()
    return process


def wait_ready(tmp_path: Path, process: TrialProcess, name="ready") -> None:
    path = tmp_path / "out" / name

    def ready():
        if not process.poll() and not path.exists():
            raise AssertionError(f"trial ended before {name}: {read_logs(process.spec)}")
        return path.exists()

    wait_for(ready, what=name)


def read_logs(spec: LaunchSpec) -> str:
    return Path(spec.stdout).read_text() + Path(spec.stderr).read_text()


def exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def cleanup():
    """Processes to SIGKILL if a test fails half way."""
    processes: list[TrialProcess] = []
    pids: list[int] = []
    yield processes, pids
    for process in processes:
        process.kill()
        process.wait(5)
    for pid in pids:
        # only what is still one of ours: the pid may have been reused
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"proc_trial.py" in cmdline or b"_guard.py" in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# ---------------------------------------------------------------------------
# stopping
# ---------------------------------------------------------------------------
def test_trial_that_traps_sigterm_writes_its_file_and_exits(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "trap", grace=5.0))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    t0 = time.monotonic()
    process.terminate()
    assert process.wait(10)
    assert time.monotonic() - t0 < 2.5, "a trial that exits on SIGTERM must not wait for SIGKILL"
    assert (tmp_path / "out" / "stopped").read_text() == "SIGTERM"
    record = process.record()
    assert record["stop_requested"] == "SIGTERM"
    assert record["cause"].startswith("stopped")
    assert record["signal"] != "SIGKILL"


# Regression: the guard once sent SIGTERM twice to each process of the trial's group
# (killpg, then kill per descendant), cutting SIGTERM handlers short.


def test_guard_sends_each_process_one_sigterm(tmp_path, monkeypatch):
    """Deterministic: the guard's signalling is recorded instead of sent."""
    from syne_tune_localx import _guard

    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    trial = subprocess.Popen(sleeper, start_new_session=True)  # leads the trial's group
    helper = subprocess.Popen(sleeper, start_new_session=True)  # a detached helper
    try:
        received = {trial.pid: 0, helper.pid: 0}

        def group_of(pid):
            try:
                return os.getpgid(pid)
            except OSError:
                return None

        class RecordingOs:
            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def killpg(pgid, sig):
                if sig == signal.SIGTERM:
                    for pid in received:
                        if group_of(pid) == pgid:
                            received[pid] += 1

            @staticmethod
            def kill(pid, sig):
                if sig == signal.SIGTERM and pid in received:
                    received[pid] += 1

        monkeypatch.setattr(_guard, "os", RecordingOs())
        guard = _guard.Guard.__new__(_guard.Guard)  # no handlers installed in pytest
        guard.pid, guard.grace, guard.term_sent, guard.kill_at = trial.pid, 1.0, False, None
        guard.signal_tree(signal.SIGTERM)
        assert received == {trial.pid: 1, helper.pid: 1}
    finally:
        for process in (trial, helper):
            process.kill()
            process.wait()


def test_a_trapping_trial_gets_one_sigterm_and_its_exit_code_is_recorded(tmp_path, cleanup):
    """The handler runs once and the clean exit is what the record says. The
    double delivery is a race, so this repeats the stop a few times."""
    outcomes = []
    for round_ in range(10):
        folder = tmp_path / str(round_)
        folder.mkdir()
        process = started(make_spec(folder, "trap", grace=5.0))
        cleanup[0].append(process)
        wait_ready(folder, process)
        process.terminate()
        assert process.wait(10)
        record = process.record()
        outcomes.append((record["exit_code"], record["signal"]))
    assert outcomes == [(0, None)] * 10


def test_trial_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "ignore", grace=GRACE))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    t0 = time.monotonic()
    process.terminate()
    wait_for(lambda: (tmp_path / "out" / "terms").exists(), what="SIGTERM at the trial")
    assert process.poll(), "killed before the grace period"
    assert process.wait(GRACE + 5)
    elapsed = time.monotonic() - t0
    assert elapsed >= GRACE, f"SIGKILL after {elapsed:.2f} s, before the {GRACE} s grace period"
    assert elapsed < GRACE + 3
    record = process.record()
    assert record["signal"] == "SIGKILL"
    assert record["exit_code"] is None
    assert record["stop_requested"] == "SIGTERM"
    assert record["trial_id"] == 0 and record["attempt"] == 0


def test_grace_period_zero_kills_at_once(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "ignore", grace=0.0))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    t0 = time.monotonic()
    process.terminate()
    assert process.wait(5)
    assert time.monotonic() - t0 < 1.0
    assert process.record()["signal"] == "SIGKILL"


def test_terminate_returns_at_once(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "ignore", grace=GRACE))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    t0 = time.monotonic()
    process.terminate()
    assert time.monotonic() - t0 < 0.2
    assert process.poll()
    assert process.wait(GRACE + 5)


@pytest.mark.parametrize("kind", ["popen", "doublefork"])
@pytest.mark.parametrize("then", ["wait", "exit"])
def test_detached_grandchild_is_gone_when_the_trial_ends(tmp_path, cleanup, kind, then):
    """The helper leaves the trial's session and ignores SIGTERM; it is gone
    when the guard is, whether the trial was stopped or exited by itself."""
    process = started(make_spec(tmp_path, "detach", kind, then, grace=0.5))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    grandchild, grandchild_sid = map(int, (tmp_path / "out" / "grandchild.pid").read_text().split())
    cleanup[1].append(grandchild)
    trial = int((tmp_path / "out" / "ready").read_text())
    assert grandchild_sid != trial  # it really left the trial's session (sid == trial pid)
    if then == "wait":
        assert exists(grandchild)
        process.terminate()
    assert process.wait(10)
    # the guard waited for every descendant: the helper is neither alive nor a zombie
    assert proc_state(grandchild) is None, f"helper {grandchild} left: {proc_state(grandchild)}"
    assert not exists(grandchild)
    record = process.record()
    if then == "exit":
        assert record["exit_code"] == 0
        assert record["stop_requested"] is None
    else:
        assert record["stop_requested"] == "SIGTERM"


def test_kill_ends_detached_helpers_too(tmp_path, cleanup):
    """kill() is the last resort (a guard that did not end in time); SIGKILLing the
    guard alone once left the trial's setsid helpers running under init."""
    process = started(make_spec(tmp_path, "detach", "popen", "wait", grace=30.0))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    grandchild, _ = map(int, (tmp_path / "out" / "grandchild.pid").read_text().split())
    cleanup[1].append(grandchild)
    trial = int((tmp_path / "out" / "ready").read_text())
    process.kill()
    assert process.wait(5)
    wait_for(lambda: proc_state(grandchild) is None and proc_state(trial) is None,
             timeout=5, what="the trial and its detached helper to be gone")


def test_no_zombies_trial_reaped_while_helpers_run_and_guard_reaped_by_popen(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "detach", "popen", "exit", grace=1.5))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    trial_pid = int((tmp_path / "out" / "ready").read_text())
    guard_pid = process.pid
    # the trial exited; its helper ignores SIGTERM, so the guard lives on for the
    # grace period, and meanwhile must have reaped the trial
    wait_for(lambda: proc_state(trial_pid) is None, timeout=2.0, what="the trial reaped")
    assert process.poll()
    assert proc_state(guard_pid) in {"S", "R"}
    assert process.wait(10)
    assert proc_state(guard_pid) is None, "the guard was left a zombie"
    assert process.record()["exit_code"] == 0


def test_guard_is_not_left_a_zombie_after_poll(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "sleep", "0.2"))
    cleanup[0].append(process)
    wait_for(lambda: not process.poll(), what="the trial to end")
    assert proc_state(process.pid) is None
    assert process.returncode == 0


# ---------------------------------------------------------------------------
# the record
# ---------------------------------------------------------------------------
def test_record_of_a_normal_exit(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "sleep", "0.3"))
    cleanup[0].append(process)
    assert process.wait(10)
    record = json.loads(Path(process.spec.record).read_text())
    assert record == process.record()
    assert record["exit_code"] == 0
    assert record["signal"] is None
    assert record["stop_requested"] is None
    assert record["cause"] == "exited"
    assert 0.3 <= record["wall_time"] < 5
    assert record["start_time"] <= record["end_time"] <= time.time()
    assert record["wall_time"] == pytest.approx(record["end_time"] - record["start_time"])
    assert process.returncode == 0
    assert Path(process.spec.stdout).read_text() == "slept\n"


def test_record_of_exit_code_3(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "exit", "3"))
    cleanup[0].append(process)
    assert process.wait(10)
    record = process.record()
    assert record["exit_code"] == 3
    assert record["signal"] is None
    assert record["cause"] == "exited"
    assert process.returncode == 3


def test_record_of_a_trial_killed_by_a_signal_nobody_asked_for(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "selfkill"))
    cleanup[0].append(process)
    assert process.wait(10)
    record = process.record()
    assert record["signal"] == "SIGKILL"
    assert record["exit_code"] is None
    assert record["stop_requested"] is None
    assert "SIGKILL" in record["cause"]


def test_record_cpu_time_of_a_busy_trial(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "busy", "0.3"))
    cleanup[0].append(process)
    assert process.wait(20)
    record = process.record()
    assert record["cpu_user"] >= 0.25


def test_record_peak_memory_covers_an_allocation(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "alloc", "50"))
    cleanup[0].append(process)
    assert process.wait(20)
    record = process.record()
    assert record["exit_code"] == 0, read_logs(process.spec)
    assert record["peak_rss_bytes"] >= 50 << 20


def test_missing_executable_gives_exit_127_and_launch_failed(tmp_path, cleanup):
    missing = str(tmp_path / "no" / "such-program")
    process = started(make_spec(tmp_path, argv=[missing, "--x"]))
    cleanup[0].append(process)
    assert process.wait(10)
    assert process.returncode == 127
    record = process.record()
    assert record["exit_code"] == 127
    assert record["cause"].startswith("launch failed")
    assert "such-program" in record["cause"]


def test_record_of_another_attempt_is_not_taken(tmp_path, cleanup):
    first = started(make_spec(tmp_path, "exit", "0", attempt=0))
    cleanup[0].append(first)
    assert first.wait(10)
    assert first.record()["attempt"] == 0
    second = TrialProcess(make_spec(tmp_path, "exit", "0", attempt=1))
    assert second.record() is None  # the file holds attempt 0


# ---------------------------------------------------------------------------
# session, environment, files, logs
# ---------------------------------------------------------------------------
def test_trial_runs_in_its_own_session_and_process_group(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "ids"))
    cleanup[0].append(process)
    assert process.wait(10)
    ids = json.loads((tmp_path / "out" / "ids.json").read_text())
    assert ids["pgid"] == ids["pid"]
    assert ids["sid"] == ids["pid"]
    assert ids["pgid"] != os.getpgid(0)
    assert ids["sid"] != os.getsid(0)
    assert ids["ppid"] == process.pid  # the guard is its parent
    assert process.record()["pid"] == ids["pid"]


def test_environment_cwd_and_files_reach_the_trial(tmp_path, cleanup, monkeypatch):
    monkeypatch.delenv("LOCALX_TEST_ADDED", raising=False)
    monkeypatch.setenv("LOCALX_TEST_INHERITED", "from the tuner")
    before = dict(os.environ)
    workdir = tmp_path / "trial" / "workdir"
    spec = make_spec(
        tmp_path,
        "ids",
        env={"LOCALX_TEST_ADDED": "a b  c"},
        cwd=str(workdir),
        files={"config.json": '{"x": 1}'},
    )
    process = started(spec)
    cleanup[0].append(process)
    assert process.wait(10)
    assert dict(os.environ) == before
    ids = json.loads((tmp_path / "out" / "ids.json").read_text())
    assert ids["env"]["LOCALX_TEST_ADDED"] == "a b  c"
    assert ids["env"]["LOCALX_TEST_INHERITED"] == "from the tuner"
    assert Path(ids["cwd"]).resolve() == workdir.resolve()
    assert (tmp_path / "trial" / "config.json").read_text() == '{"x": 1}'


def test_logs_are_appended_across_attempts(tmp_path, cleanup):
    for attempt in range(2):
        process = started(make_spec(tmp_path, "sleep", "0", attempt=attempt))
        cleanup[0].append(process)
        assert process.wait(10)
        assert process.record()["attempt"] == attempt
    assert Path(process.spec.stdout).read_text() == "slept\nslept\n"


# ---------------------------------------------------------------------------
# after unpickling (a reloaded tuner), and when the tuner dies
# ---------------------------------------------------------------------------
def test_unpickled_process_is_watched_by_pid(tmp_path, cleanup):
    process = started(make_spec(tmp_path, "trap", grace=5.0))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    copy = pickle.loads(pickle.dumps(process))
    assert copy._popen is None
    assert copy.pid == process.pid
    assert copy.poll()
    copy.terminate()
    # the guard has exited but nobody reaped it yet: a zombie is not alive
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    assert proc_state(process.pid) == "Z"
    assert not copy.poll()
    assert copy.record()["stop_requested"] == "SIGTERM"
    assert (tmp_path / "out" / "stopped").exists()
    assert process.wait(5)  # the original still reaps it


def test_trial_ends_when_the_process_that_started_it_dies(tmp_path, cleanup):
    """The tuner is SIGKILLed: nothing runs its clean-up, yet the trial (which
    ignores SIGTERM) and the guard are gone after the grace period."""
    spec = make_spec(tmp_path, "ignore", grace=GRACE)
    spec_file = tmp_path / "spec.pkl"
    spec_file.write_bytes(pickle.dumps(spec))
    code = textwrap.dedent(
        f"""
        import pickle, sys, time
        from syne_tune_localx.process import TrialProcess
        process = TrialProcess(pickle.load(open({str(spec_file)!r}, "rb")))
        process.start()
        print(process.pid, flush=True)
        time.sleep(60)
        """
    )
    tuner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        guard = int(tuner.stdout.readline())
        cleanup[1].append(guard)
        ready = tmp_path / "out" / "ready"
        wait_for(ready.exists, what="trial ready")
        trial = int(ready.read_text())
        cleanup[1].append(trial)
    finally:
        tuner.kill()
        tuner.wait()
        tuner.stdout.close()
    wait_for(lambda: (tmp_path / "out" / "terms").exists(), what="SIGTERM at the trial")
    wait_for(lambda: not exists(trial), timeout=GRACE + 4, what="the trial to end")
    wait_for(lambda: proc_state(guard) in (None, "Z"), timeout=3, what="the guard to end")
    record = json.loads(Path(spec.record).read_text())
    assert record["signal"] == "SIGKILL"
    assert record["stop_requested"] is not None


def test_trial_outlives_the_thread_that_started_it(tmp_path, cleanup):
    process = TrialProcess(make_spec(tmp_path, "ignore", grace=GRACE))
    cleanup[0].append(process)

    def launch():
        process.start()
        wait_ready(tmp_path, process)  # the guard is set up once the trial runs

    launcher = threading.Thread(target=launch)
    launcher.start()
    launcher.join()
    terms = tmp_path / "out" / "terms"
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and not terms.exists():
        time.sleep(0.02)
    assert not terms.exists(), "the trial got SIGTERM when the launching thread ended"
    assert process.poll()


def test_descendants_walk_the_tree_not_every_process(tmp_path, cleanup, monkeypatch):
    """The guard samples its tree every half second: a scan of all of /proc made
    that cost grow with the number of processes on the machine."""
    from syne_tune_localx import _guard

    process = started(make_spec(tmp_path, "detach", "popen", "wait", grace=0.5))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    grandchild, _ = map(int, (tmp_path / "out" / "grandchild.pid").read_text().split())
    cleanup[1].append(grandchild)
    expected = sorted(_guard._descendants_by_scan(process.pid))
    real_listdir = os.listdir
    listed = []

    def listdir(path="."):
        listed.append(str(path))
        return real_listdir(path)

    monkeypatch.setattr(_guard.os, "listdir", listdir)
    assert sorted(_guard.descendants(process.pid)) == expected
    assert grandchild in expected
    assert "/proc" not in listed


def test_helpers_of_a_guard_killed_from_outside_are_found_and_ended(tmp_path, cleanup):
    """kill -9 of the guard (by hand, or the OOM killer): the trial dies with it,
    but its setsid helper used to live on under init."""
    process = started(make_spec(tmp_path, "detach", "popen", "wait", grace=30.0))
    cleanup[0].append(process)
    wait_ready(tmp_path, process)
    grandchild, _ = map(int, (tmp_path / "out" / "grandchild.pid").read_text().split())
    cleanup[1].append(grandchild)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(5)
    assert exists(grandchild) and proc_state(grandchild) != "Z"
    assert process.record() is None
    assert grandchild in process.end_leftovers()
    wait_for(lambda: proc_state(grandchild) is None, timeout=5, what="the helper to be gone")
