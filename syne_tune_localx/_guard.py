"""The guard: a small process between the backend and one trial.

Started by :mod:`syne_tune_localx.process` as ``python -S -I _guard.py SPEC``,
standard library only (it must start in a few tens of milliseconds). It

* starts the trial in a session of its own, so signals reach the trial and
  everything it started, and the tuner's terminal does not;
* becomes a child subreaper, so helpers the trial detaches stay below it;
* on SIGTERM, SIGINT or SIGHUP (a stop or pause, or the tuner's death through
  the parent-death signal) sends SIGTERM to the trial's group and every
  descendant, waits ``grace_period`` seconds, then SIGKILLs what is left;
* when the trial exits by itself, ends the helpers it left behind the same way;
* reaps every descendant (no zombies) and writes a JSON record of how the trial
  ended -- exit code or signal, start and end time, CPU time, peak memory of
  the process tree -- atomically into the trial folder, so a tuner that crashed
  and was reloaded still learns it.
"""

import json
import os
import resource
import select
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
SAMPLE_SECONDS = 0.5
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _prctl(option, value):
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _die_with_guard():
    # runs in the trial between fork and exec: if the guard is SIGKILLed, so is the trial
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _children(pid):
    """Direct children of ``pid`` from /proc/PID/task/TID/children (Linux 3.5+);
    ``None`` where the kernel does not offer that file."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # the process is gone
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(x) for x in f.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None
        except OSError:
            continue
    return found


def read_each_process(name):
    """Yield ``(pid, content of /proc/<pid>/<name>)`` for every process whose
    file can be read (Linux); nothing where /proc is missing."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/{name}", "rb") as f:
                yield int(entry), f.read()
        except OSError:
            continue


def _descendants_by_scan(root_pid):
    """The same as :func:`descendants` from a scan of every process."""
    children = {}
    for pid, stat in read_each_process("stat"):
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root_pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def descendants(root_pid):
    """Pids of all processes below ``root_pid`` (Linux). Walks the tree through
    each process's children list, so the cost follows the size of the tree, not
    the number of processes on the machine; falls back to a scan of /proc."""
    found, todo = [], [root_pid]
    while todo:
        children = _children(todo.pop())
        if children is None:
            return _descendants_by_scan(root_pid)
        found.extend(children)
        todo.extend(children)
    return found


def tree_rss(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            continue
    return total


class Guard:
    def __init__(self, spec):
        self.spec = spec
        self.grace = float(spec.get("grace_period", 0.0))
        self.stop_reason = None
        self.child = None
        self.trial_status = None
        self.end_time = None
        self.kill_at = None
        self.term_sent = False
        self.peak_rss = 0
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def _on_stop_signal(self, signum, _frame):
        if self.stop_reason is None:
            self.stop_reason = signal.Signals(signum).name

    def run(self):
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        if self.spec.get("parent_death_signal", False):
            # the signal follows the *thread* that started us, so the backend asks
            # for it only from the main thread; the getppid() check covers the rest
            _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        parent = self.spec.get("parent_pid")
        if parent is not None and os.getppid() != parent:
            self.stop_reason = "tuner gone"
        self.start_time = time.time()
        try:
            self.child = subprocess.Popen(
                self.spec["argv"],
                cwd=self.spec.get("cwd"),
                start_new_session=True,
                preexec_fn=_die_with_guard,
            )
        except OSError as err:
            print(f"[localx-guard] cannot start trial: {err}", file=sys.stderr, flush=True)
            self.write_record(launch_error=str(err))
            return 127
        self.pid = self.child.pid
        self.loop()
        return self.write_record()

    def loop(self):
        while True:
            children_left = self.reap()
            now = time.time()
            if self.trial_status is None and self.stop_reason is not None and not self.term_sent:
                self.signal_tree(signal.SIGTERM)
            elif self.trial_status is not None and not self.term_sent and children_left:
                # the trial is gone; end the helpers it left behind
                self.signal_tree(signal.SIGTERM)
            if self.kill_at is not None and now >= self.kill_at:
                self.signal_tree(signal.SIGKILL)
                self.kill_at = now + 1.0
            if self.trial_status is not None and not children_left:
                return
            self.sample_memory()
            timeout = SAMPLE_SECONDS
            if self.kill_at is not None:
                timeout = max(0.0, min(timeout, self.kill_at - now))
            select.select([self.wake_r], [], [], timeout)
            try:
                while os.read(self.wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            parent = self.spec.get("parent_pid")
            if parent is not None and self.stop_reason is None and os.getppid() != parent:
                self.stop_reason = "tuner gone"

    def reap(self):
        """Reap every exited descendant; return whether any child is left."""
        while True:
            try:
                pid, status, _ = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.pid:
                self.trial_status = status
                self.end_time = time.time()
                self.child.returncode = os.waitstatus_to_exitcode(status)

    def signal_tree(self, sig):
        if sig == signal.SIGTERM:
            self.term_sent = True
            self.kill_at = time.time() + self.grace
        try:
            os.killpg(self.pid, sig)
        except OSError:
            pass
        # what left the trial's group (setsid helpers) gets the signal on its own;
        # the group got it once already, a second SIGTERM would cut its handler short
        for pid in descendants(os.getpid()):
            try:
                if os.getpgid(pid) != self.pid:
                    os.kill(pid, sig)
            except OSError:
                pass

    def sample_memory(self):
        now = time.monotonic()
        if now < getattr(self, "_next_sample", 0.0):
            return
        self._next_sample = now + SAMPLE_SECONDS
        self.peak_rss = max(self.peak_rss, tree_rss(descendants(os.getpid())))

    def write_record(self, launch_error=None):
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        end = self.end_time if self.end_time is not None else time.time()
        record = {
            "trial_id": self.spec.get("trial_id"),
            "attempt": self.spec.get("attempt"),
            "pid": getattr(self, "pid", None),
            "start_time": self.start_time,
            "end_time": end,
            "wall_time": end - self.start_time,
            "cpu_user": usage.ru_utime,
            "cpu_system": usage.ru_stime,
            # ru_maxrss is the largest single process (KiB on Linux); the sampled
            # sum over the tree catches trials made of several processes
            "peak_rss_bytes": max(self.peak_rss, usage.ru_maxrss * 1024),
            "exit_code": None,
            "signal": None,
            "stop_requested": self.stop_reason,
            "cause": None,
        }
        if launch_error is not None:
            record.update(exit_code=127, cause="launch failed: " + launch_error)
            code = 127
        else:
            if os.WIFSIGNALED(self.trial_status):
                sig = os.WTERMSIG(self.trial_status)
                record["signal"] = signal.Signals(sig).name
                code = 128 + sig
            else:
                code = os.WEXITSTATUS(self.trial_status)
                record["exit_code"] = code
            if self.stop_reason is not None and self.term_sent:
                record["cause"] = f"stopped ({self.stop_reason})"
            elif record["signal"] is not None:
                record["cause"] = f"killed by {record['signal']}"
            else:
                record["cause"] = "exited"
        path = self.spec["record_path"]
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, path)
        return code


def main(argv):
    with open(argv[1]) as f:
        spec = json.load(f)
    return Guard(spec).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
