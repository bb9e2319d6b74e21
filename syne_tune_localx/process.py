"""One trial process: a launch spec, executed through the guard.

:class:`LaunchSpec` is the plain, picklable description of a launch that the
backend and its mixins produce; :class:`TrialProcess` runs it locally. The
trial runs below a guard process (:mod:`syne_tune_localx._guard`) that owns its
session, escalates stop signals, ends it when the tuner dies, reaps it and
writes how it ended into the trial folder.
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from syne_tune_localx._guard import descendants, read_each_process

GUARD_SCRIPT = str(Path(__file__).with_name("_guard.py"))
LAUNCH_TOKEN_VARIABLE = "SYNE_TUNE_LOCALX_LAUNCH"


@dataclass
class LaunchSpec:
    """Everything needed to launch one attempt of a trial.

    :param trial_id: ID of the trial
    :param attempt: 0 for the first launch, then one more per resume
    :param argv: The command, as a list (never a shell string)
    :param env: Environment variables added to the tuner's for this launch
    :param trial_path: The trial folder
    :param cwd: Working folder of the trial; ``None`` keeps the tuner's
    :param files: ``{name relative to trial_path: text}`` written before launch
    :param folders: Folders relative to trial_path created before launch
    :param stdout: File the trial's stdout is appended to
    :param stderr: File the trial's stderr is appended to
    :param record: File the guard writes the exit record to
    :param grace_period: Seconds between SIGTERM and SIGKILL on stop
    """

    trial_id: int
    attempt: int
    argv: list[str]
    env: dict[str, str]
    trial_path: str
    cwd: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    folders: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    record: str = ""
    grace_period: float = 10.0


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a pid
    from a later process that reuses it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rfind(b")") + 2 :].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def launching_process(trial_path: Path) -> int | None:
    """Whether a trial folder belongs to a launch of *another* live process.

    :param trial_path: A trial folder
    :return: The pid of the process (a tuner) that launched the trial in this
        folder, if that launch has not ended and that process is alive and is
        not this one; ``None`` otherwise
    """
    try:
        launch = json.loads((trial_path / "launch.json").read_text())
    except (OSError, ValueError):
        return None
    try:
        record = json.loads(Path(launch["record_path"]).read_text())
        if record.get("attempt") == launch.get("attempt"):
            return None  # that launch ended
    except (OSError, ValueError, KeyError, TypeError):
        pass
    pid = launch.get("parent_pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return None
    ticks = launch.get("parent_start_ticks")
    if ticks is not None and _start_ticks(pid) != ticks:
        return None  # the pid was reused
    return pid


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class TrialProcess:
    """A launched trial attempt.

    After unpickling (a reloaded tuner) the ``Popen`` handle is gone: the
    process is then watched by pid and start time, and cannot be waited on.

    :param spec: What to launch
    """

    def __init__(self, spec: LaunchSpec):
        self.spec = spec
        self.pid: int | None = None
        self.ticks: int | None = None
        self.returncode: int | None = None
        self.owner: tuple[int, int | None] | None = None  # (pid, start ticks) of the launcher
        self.token: str | None = None
        self._popen: subprocess.Popen | None = None

    def start(self) -> None:
        """Write the files, open the logs and start the guard. Raises ``OSError``
        when any of it fails; nothing is left running then."""
        spec = self.spec
        trial_path = Path(spec.trial_path)
        for name in spec.folders:
            (trial_path / name).mkdir(parents=True, exist_ok=True)
        for name, text in spec.files.items():
            _write_atomically(trial_path / name, text)
        if spec.cwd is not None:
            Path(spec.cwd).mkdir(parents=True, exist_ok=True)
        guard_spec = {
            "trial_id": spec.trial_id,
            "attempt": spec.attempt,
            "argv": spec.argv,
            "cwd": spec.cwd,
            "grace_period": spec.grace_period,
            "record_path": spec.record,
            "parent_pid": os.getpid(),
            "parent_start_ticks": _start_ticks(os.getpid()),
            "parent_death_signal": threading.current_thread() is threading.main_thread(),
        }
        spec_path = trial_path / "launch.json"
        _write_atomically(spec_path, json.dumps(guard_spec, indent=1))
        try:
            os.unlink(spec.record)
        except FileNotFoundError:
            pass
        env = dict(os.environ)
        env.update(spec.env)
        # marks every process of this launch, even those that leave the tree
        self.token = f"{spec.trial_id}.{spec.attempt}.{secrets.token_hex(8)}"
        env[LAUNCH_TOKEN_VARIABLE] = self.token
        with open(spec.stdout, "ab") as out, open(spec.stderr, "ab") as err:
            self._popen = subprocess.Popen(
                [sys.executable, "-S", "-I", GUARD_SCRIPT, str(spec_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=spec.cwd,
                start_new_session=True,
                close_fds=True,
            )
        self.pid = self._popen.pid
        self.ticks = _start_ticks(self.pid)
        self.owner = (os.getpid(), _start_ticks(os.getpid()))

    # --- watching --------------------------------------------------------
    def poll(self) -> bool:
        """
        :return: True while the process (the guard, hence the trial) is alive
        """
        if self.returncode is not None or self.pid is None:
            return False
        if self._popen is not None:
            code = self._popen.poll()
            if code is None:
                return True
            self.returncode = code
            return False
        if self._alive_by_pid():
            return True
        self.returncode = -1  # not our child: its status is in the record
        return False

    def _alive_by_pid(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
        ticks = _start_ticks(self.pid)
        if ticks is not None and self.ticks is not None and ticks != self.ticks:
            return False  # the pid was reused by another process
        if ticks is not None:
            try:
                with open(f"/proc/{self.pid}/stat", "rb") as f:
                    stat = f.read()
                if stat[stat.rfind(b")") + 2 :].split()[0] == b"Z":
                    return False
            except OSError:
                return False
        return True

    def owned_elsewhere(self) -> bool:
        """
        :return: True if the process that launched this one is another process
            and still alive (this object was unpickled elsewhere, e.g. to inspect
            a running experiment): then it is not ours to end
        """
        if self.owner is None or self.owner[0] == os.getpid():
            return False
        pid, ticks = self.owner
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return ticks is None or _start_ticks(pid) == ticks

    def terminate(self) -> None:
        """Ask the guard to stop the trial: SIGTERM now, SIGKILL after the grace
        period. Returns at once."""
        if self.poll():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the trial's whole process tree at once. The guard then reaps
        it and writes its record; a guard that does not end within a second is
        SIGKILLed too. (Killing only the guard would leave the helpers a trial
        detached running under init.)"""
        if not self.poll():
            return
        for pid in descendants(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not self.wait(1.0):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def end_leftovers(self) -> list[int]:
        """SIGKILL processes of this launch that outlived their guard. Only
        needed when the guard itself was SIGKILLed from outside (by hand, the
        OOM killer): the helpers the trial detached are then no longer below
        anything of ours, so they are found by the token in their environment.

        :return: The pids that were killed
        """
        if self.token is None:
            return []
        needle = b"\0" + f"{LAUNCH_TOKEN_VARIABLE}={self.token}".encode() + b"\0"
        killed = []
        for pid, environ in read_each_process("environ"):
            if needle in b"\0" + environ + b"\0":
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except OSError:
                    continue
        return killed

    def wait(self, timeout: float) -> bool:
        """
        :param timeout: Seconds to wait at most
        :return: True if the process is gone
        """
        deadline = time.monotonic() + timeout
        if self._popen is not None and self.returncode is None:
            try:
                self.returncode = self._popen.wait(timeout=max(0.0, timeout))
            except subprocess.TimeoutExpired:
                return False
            return True
        while self.poll():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def stop_and_wait(self, extra: float = 5.0) -> None:
        """Graceful stop, then wait the grace period plus ``extra`` seconds, then
        kill: used where the caller must know the trial is gone."""
        self.terminate()
        if not self.wait(self.spec.grace_period + extra):
            self.kill()
            self.wait(extra)

    def record(self) -> dict | None:
        """
        :return: The guard's exit record of this attempt, or ``None``
        """
        try:
            with open(self.spec.record) as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        if record.get("attempt") != self.spec.attempt:
            return None
        return record

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_popen"] = None
        return state
