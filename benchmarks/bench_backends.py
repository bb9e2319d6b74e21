#!/usr/bin/env python
"""Side-by-side benchmark of syne-tune's ``LocalBackend`` and ``LocalXBackend``.

Both backends are measured in one run, on the same machine, with the same trial
script (``trial_sleep.py``) and the same logs, and every result is reported as
a ratio ``original / localx`` (above 1: ours is faster). Nothing here passes or
fails; a sanity check that both backends returned the expected number of
results is the only thing that can stop a run.

Three measurements:

``poll``
    Cost of one ``fetch_status_results([trial_id])`` -- the Tuner's poll -- on a
    running trial whose ``std.out`` already holds N lines that the backend has
    consumed (steady state): once when nothing new was written ("idle"), once
    after 10 metric lines were appended ("+10 lines"). The log is appended by
    the harness to the std.out of a running, sleeping trial, identically for
    both backends. The first poll, which consumes the whole log, is reported
    too ("first poll"), for information.
``stop``
    Time for ``stop_trial()`` to return, and time until the trial process has
    exited (it exits on SIGTERM) and until its pid is gone (reaped), watched
    through ``/proc/<pid>/stat``.
``start``
    Time for ``start_trial()`` to return, and time until the first metric the
    trial prints at start is returned by ``fetch_status_results`` (polled every
    millisecond).

Run ``python benchmarks/bench_backends.py --help`` for the options, and see
``benchmarks/README.md`` for how to read the output.
"""

import argparse
import gc
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRIAL_SCRIPT = HERE / "trial_sleep.py"
KINDS = ("original", "localx")
LABELS = {"original": "LocalBackend", "localx": "LocalXBackend"}
APPENDED_LINES = 10

FULL = {"sizes": [1_000, 100_000, 1_000_000], "reps": 5, "reps_large": 3, "trials": 8}
QUICK = {"sizes": [1_000, 100_000], "reps": 3, "reps_large": 2, "trials": 4}
LARGE = 1_000_000  # sizes from here on use --reps-large repetitions


# ----------------------------------------------------------------------------
# processes
# ----------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or ``None`` when
    the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def proc_state(pid: int) -> str | None:
    """State letter of ``pid`` (``"Z"`` for a zombie), or ``None`` when the
    pid is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[0].decode()


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` since boot in clock ticks: tells our trial from
    a later process that got the same pid."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def is_running(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z")


class Harness:
    """Owns the temporary folder, the backends and the trial pids, so that
    everything can be cleaned up whatever happens."""

    def __init__(self, root: Path):
        self.root = root
        self.backends: list[tuple[str, object]] = []
        self.trial_pids: dict[int, int | None] = {}  # pid -> start ticks
        self._count = 0

    def make_backend(self, kind: str, name: str):
        """A backend of ``kind`` whose trials live under ``root/name``. GPU
        rotation is off for both: GPUs are not what is measured, and the
        original's GPU count writes a ``std.out`` into the working folder."""
        if kind == "original":
            from syne_tune.backend.local_backend import LocalBackend

            backend = LocalBackend(entry_point=str(TRIAL_SCRIPT), rotate_gpus=False)
        else:
            from syne_tune_localx import LocalXBackend

            backend = LocalXBackend(entry_point=str(TRIAL_SCRIPT), rotate_gpus=False)
        path = self.root / name
        path.mkdir(parents=True)
        backend.set_path(str(path))
        self.backends.append((kind, backend))
        return backend

    def config(self, first_metric: bool = False, sleep: float = 120.0) -> dict:
        self._count += 1
        pid_file = self.root / "pids" / f"{self._count}.pid"
        pid_file.parent.mkdir(exist_ok=True)
        return {
            "pid_file": str(pid_file),
            "first_metric": int(first_metric),
            "sleep": sleep,
        }

    def wait_for_pid(self, config: dict, timeout: float = 30.0) -> int:
        """Wait until the trial has written its pid (its SIGTERM handler is in
        place by then)."""
        path = Path(config["pid_file"])
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid = int(path.read_text())
                self.trial_pids[pid] = start_ticks(pid)
                return pid
            except (FileNotFoundError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"trial did not start within {timeout} s ({path} missing)"
                )
            time.sleep(0.002)

    def end_trial(
        self, kind: str, backend, trial_id: int, pid: int, stopped: bool
    ) -> None:
        """Untimed: stop the trial if that was not done, wait until its process
        is gone, and let the backend reap what it started."""
        if not stopped:
            backend.stop_trial(trial_id)
        deadline = time.monotonic() + 20.0
        while is_running(pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        if kind == "original":
            popen = backend.trial_subprocess[trial_id]
            if popen.poll() is None:
                popen.kill()
            popen.wait()
        else:
            # the guard process is reaped by the backend's next status check
            while time.monotonic() < deadline:
                if trial_id not in dict(backend.busy_trial_ids()):
                    break
                time.sleep(0.005)
        if not is_running(pid):
            self.trial_pids.pop(pid, None)

    def cleanup(self) -> None:
        for kind, backend in self.backends:
            try:
                if kind == "original":
                    for popen in backend.trial_subprocess.values():
                        if popen.poll() is None:
                            popen.kill()
                        popen.wait(timeout=10)
                else:
                    backend.stop_all()
            except Exception as err:  # noqa: BLE001 -- cleanup goes on whatever happened
                print(f"warning: cleanup of a {kind} backend: {err!r}", file=sys.stderr)
        for pid, ticks in self.trial_pids.items():
            # only a trial of ours: still running, and started when ours did
            if is_running(pid) and ticks is not None and start_ticks(pid) == ticks:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.trial_pids.clear()
        self.backends.clear()
        gc.collect()
        shutil.rmtree(self.root, ignore_errors=True)


# ----------------------------------------------------------------------------
# logs
# ----------------------------------------------------------------------------
def log_lines(
    first_line: int, count: int, first_iter: int, plain_every: int, t0: float
):
    """Log text of ``count`` lines: metric lines as syne-tune's ``Reporter``
    prints them, with one plain log line every ``plain_every`` lines (never
    if 0). Returns ``(bytes, number of metric lines)``."""
    parts = []
    it = first_iter
    for i in range(first_line, first_line + count):
        if plain_every and i % plain_every == plain_every - 1:
            parts.append(f"INFO step {i}: lr=0.001 grad_norm={(i % 97) * 0.0131:.4f}\n")
            continue
        parts.append(
            f'[tune-metric]: {{"epoch": {it + 1}, "loss": {1.0 / (it + 1):.6f}, '
            f'"accuracy": {0.5 + 0.5 * it / (it + 100):.6f}, '
            f'"st_worker_timestamp": {t0 + 0.001 * it:.6f}, '
            f'"st_worker_time": {0.001 * it:.6f}, "st_worker_iter": {it}}}\n'
        )
        it += 1
    return "".join(parts).encode(), it - first_iter


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


# ----------------------------------------------------------------------------
# measurements
# ----------------------------------------------------------------------------
def timed_poll(backend, trial_id: int) -> tuple[float, float, int]:
    """One poll: ``(wall seconds, CPU seconds of this process, new results)``.
    The poll runs in the harness' own (single-threaded) process, so its CPU
    time is its cost without what other jobs on the machine add to the wall
    time."""
    t, c = time.perf_counter(), time.process_time()
    _, results = backend.fetch_status_results([trial_id])
    return time.perf_counter() - t, time.process_time() - c, len(results)


def bench_poll(
    h: Harness, sizes: list[int], reps: int, reps_large: int, plain_every: int
):
    out = []
    for index, size in enumerate(sizes):
        n_reps = reps_large if size >= LARGE else reps
        t0 = time.time() - 3600.0
        log, n_metrics = log_lines(0, size, 0, plain_every, t0)
        order = KINDS if index % 2 == 0 else KINDS[::-1]
        row = {
            "lines": size,
            "metric_lines": n_metrics,
            "log_bytes": len(log),
            "reps": n_reps,
        }
        for kind in order:
            backend = h.make_backend(kind, f"poll-{size}-{kind}")
            config = h.config(sleep=600.0)
            trial_id = backend.start_trial(config).trial_id
            pid = h.wait_for_pid(config)
            std_out = backend.trial_path(trial_id) / "std.out"
            append(std_out, log)
            first, first_cpu, count = timed_poll(backend, trial_id)
            if count != n_metrics:
                raise RuntimeError(
                    f"{LABELS[kind]}: first poll returned {count} results, expected {n_metrics}"
                )
            idle, after, idle_cpu, after_cpu = [], [], [], []
            next_line, next_iter = size, n_metrics
            for _ in range(n_reps):
                dt, cpu, count = timed_poll(backend, trial_id)
                if count != 0:
                    raise RuntimeError(
                        f"{LABELS[kind]}: idle poll returned {count} results"
                    )
                idle.append(dt)
                idle_cpu.append(cpu)
                # ten metric lines, so the count of new results checks both backends
                more, k = log_lines(next_line, APPENDED_LINES, next_iter, 0, t0)
                next_line += APPENDED_LINES
                next_iter += k
                append(std_out, more)
                dt, cpu, count = timed_poll(backend, trial_id)
                if count != APPENDED_LINES:
                    raise RuntimeError(
                        f"{LABELS[kind]}: poll after {APPENDED_LINES} new lines returned "
                        f"{count} results"
                    )
                after.append(dt)
                after_cpu.append(cpu)
            h.end_trial(kind, backend, trial_id, pid, stopped=False)
            row[kind] = {"first": first, "idle": idle, "after_append": after}
            row[f"{kind}_cpu"] = {
                "first": first_cpu,
                "idle": idle_cpu,
                "after_append": after_cpu,
            }
            # the original holds every metric of the trial: free it before the next run
            h.backends = [(k, b) for k, b in h.backends if b is not backend]
            del backend
            gc.collect()
            shutil.rmtree(h.root / f"poll-{size}-{kind}", ignore_errors=True)
        del log
        out.append(row)
        print(f"  poll: {size} lines done", flush=True)
    return out


def watch_exit(pid: int, t: float, give_up: float = 30.0):
    """Seconds from ``t`` until ``pid`` has exited (a zombie or gone) and until
    it is gone (reaped; ``None`` if it stays a zombie for a second)."""
    exited = reaped = None
    while True:
        state = proc_state(pid)
        now = time.perf_counter()
        if state in (None, "Z") and exited is None:
            exited = now - t
        if state is None:
            reaped = now - t
            return exited, reaped
        if exited is not None and now - t > exited + 1.0 or now - t > give_up:
            return exited, reaped
        time.sleep(0.0005)


def bench_stop(h: Harness, trials: int):
    """Stops through both backends, interleaved with a reference: the same
    trial started and SIGTERMed by the harness itself, no backend in between."""
    backends = {kind: h.make_backend(kind, f"stop-{kind}") for kind in KINDS}
    samples = {kind: [] for kind in KINDS}
    samples["reference_direct_sigterm"] = []
    order = list(KINDS) + ["direct"]
    for rep in range(trials):
        for kind in order[rep % 3 :] + order[: rep % 3]:
            if kind == "direct":
                samples["reference_direct_sigterm"].append(direct_sigterm(h))
                continue
            backend = backends[kind]
            config = h.config(sleep=120.0)
            trial_id = backend.start_trial(config).trial_id
            pid = h.wait_for_pid(config)
            time.sleep(0.1)  # let the trial (and the guard) settle into their sleep
            t = time.perf_counter()
            backend.stop_trial(trial_id)
            returned = time.perf_counter() - t
            exited, reaped = watch_exit(pid, t)
            h.end_trial(kind, backend, trial_id, pid, stopped=True)
            samples[kind].append(
                {
                    "returned": returned,
                    "exited": exited,
                    "reaped": reaped,
                    "ended_by": ended_by(kind, backend, trial_id),
                }
            )
    print("  stop: done", flush=True)
    return samples


def direct_sigterm(h: Harness) -> float:
    """Seconds until the trial, SIGTERMed by the harness, has exited."""
    config = h.config(sleep=120.0)
    argv = [sys.executable, str(TRIAL_SCRIPT)]
    for key, value in config.items():
        argv += [f"--{key}", str(value)]
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid = h.wait_for_pid(config)
        time.sleep(0.1)
        t = time.perf_counter()
        popen.send_signal(signal.SIGTERM)
        exited, _ = watch_exit(pid, t)
        return exited
    finally:
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
        h.trial_pids.pop(popen.pid, None)


def ended_by(kind: str, backend, trial_id: int) -> str:
    if kind == "original":
        code = backend.trial_subprocess[trial_id].returncode
        if code is not None and code < 0:
            return signal.Signals(-code).name
        return f"exit {code}"
    record = backend.process_record(trial_id) or {}
    if record.get("signal"):
        return record["signal"]
    return f"exit {record.get('exit_code')}"


def bench_start(h: Harness, trials: int):
    backends = {kind: h.make_backend(kind, f"start-{kind}") for kind in KINDS}
    samples = {kind: [] for kind in KINDS}
    for rep in range(-1, trials):  # rep -1 warms each backend up, not counted
        for kind in KINDS if rep % 2 == 0 else KINDS[::-1]:
            backend = backends[kind]
            config = h.config(first_metric=True, sleep=60.0)
            t = time.perf_counter()
            trial_id = backend.start_trial(config).trial_id
            returned = time.perf_counter() - t
            deadline = t + 30.0
            first_metric = None
            while time.perf_counter() < deadline:
                _, results = backend.fetch_status_results([trial_id])
                if results:
                    first_metric = time.perf_counter() - t
                    break
                time.sleep(0.001)
            pid = h.wait_for_pid(config)
            h.end_trial(kind, backend, trial_id, pid, stopped=False)
            if first_metric is None:
                raise RuntimeError(
                    f"{LABELS[kind]}: no metric within 30 s of the start"
                )
            if rep >= 0:
                samples[kind].append(
                    {"returned": returned, "first_metric": first_metric}
                )
    samples["reference_bare_interpreter"] = bare_interpreter(trials)
    print("  start: done", flush=True)
    return samples


def bare_interpreter(trials: int) -> list[float]:
    """Reference for the start overhead: wall time of ``python -S -I -c pass``,
    the way the guard process is started, on this machine."""
    samples = []
    for _ in range(trials):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-I", "-c", "pass"], check=True)
        samples.append(time.perf_counter() - t)
    return samples


# ----------------------------------------------------------------------------
# summary and report
# ----------------------------------------------------------------------------
def median(values):
    """Median of the samples that are not ``None``; a single sample as is."""
    if not isinstance(values, list):
        values = [values]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(original, ours):
    if original is None or ours is None or ours <= 0:
        return None
    return original / ours


def summarize(raw: dict) -> dict:
    summary = {"poll": [], "stop": {}, "start": {}}
    for row in raw.get("poll", []):
        for what in ("idle", "after_append", "first"):
            wall = {kind: median(row[kind][what]) for kind in KINDS}
            cpu = {kind: median(row[f"{kind}_cpu"][what]) for kind in KINDS}
            summary["poll"].append(
                {
                    "lines": row["lines"],
                    "poll": what,
                    "reps": 1 if what == "first" else row["reps"],
                    **{f"{kind}_s": wall[kind] for kind in KINDS},
                    "ratio": ratio(wall["original"], wall["localx"]),
                    **{f"{kind}_cpu_s": cpu[kind] for kind in KINDS},
                    "cpu_ratio": ratio(cpu["original"], cpu["localx"]),
                }
            )
    for section, fields in (
        ("stop", ("returned", "exited", "reaped")),
        ("start", ("returned", "first_metric")),
    ):
        samples = raw.get(section)
        if not samples:
            continue
        for field in fields:
            med = {kind: median([s[field] for s in samples[kind]]) for kind in KINDS}
            entry = {f"{kind}_s": med[kind] for kind in KINDS}
            entry["ratio"] = ratio(med["original"], med["localx"])
            if field == "reaped":
                entry["not_reaped"] = {
                    kind: sum(s["reaped"] is None for s in samples[kind])
                    for kind in KINDS
                }
            summary[section][field] = entry
        if section == "stop":
            summary["stop"]["ended_by"] = {
                kind: dict(Counter(s["ended_by"] for s in samples[kind]).most_common())
                for kind in KINDS
            }
            summary["stop"]["reference_direct_sigterm_s"] = median(
                samples.get("reference_direct_sigterm", [])
            )
        else:
            summary["start"]["reference_bare_interpreter_s"] = median(
                samples.get("reference_bare_interpreter", [])
            )
    return summary


def fmt_time(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(value) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}x"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def fmt_lines(n: int) -> str:
    for unit, name in ((1_000_000, "M"), (1000, "k")):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{name}"
    return str(n)


def fmt_reaped(cell: str, zombies: int, n: int) -> str:
    if zombies == 0:
        return cell
    if zombies == n:
        return f"never: zombie ({n}/{n})"
    return f"{cell} ({zombies}/{n} zombie)"


def table(header: list, rows: list[list]) -> str:
    """Plain-text table: the first two columns left-aligned, the others
    right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row):
        cells = (
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(r) for r in rows])


POLL_NAMES = {
    "idle": "idle",
    "after_append": f"+{APPENDED_LINES} lines",
    "first": "first poll",
}


def report(result: dict) -> str:
    s = result["summary"]
    out = []
    head = ["", "", LABELS["original"], LABELS["localx"], "original / localx"]
    if s["poll"]:
        out.append(
            "Poll cost: one fetch_status_results([trial_id]) on a running trial whose std.out "
            "holds N lines (median)"
        )
        rows = [
            [
                fmt_lines(r["lines"]),
                f"{POLL_NAMES[r['poll']]} (n={r['reps']})",
                fmt_time(r["original_s"]),
                fmt_time(r["localx_s"]),
                fmt_ratio(r["ratio"]),
                fmt_ratio(r["cpu_ratio"]),
            ]
            for r in s["poll"]
        ]
        out.append(table(["lines", "poll", *head[2:], "ratio of CPU times"], rows))
        out.append("")
    if s["stop"]:
        n = result["settings"]["trials"]
        out.append(f"Stop latency: trial that exits on SIGTERM (median of {n})")
        names = {
            "returned": "stop_trial() returns",
            "exited": "trial process exited",
            "reaped": "trial pid gone (reaped)",
        }
        rows = []
        for field, name in names.items():
            e = s["stop"][field]
            cells = [fmt_time(e[f"{k}_s"]) for k in KINDS]
            if field == "reaped":
                cells = [
                    fmt_reaped(c, e["not_reaped"][k], n)
                    for c, k in zip(cells, KINDS, strict=True)
                ]
            rows.append(["stop", name] + cells + [fmt_ratio(e["ratio"])])
        ended = s["stop"]["ended_by"]
        rows.append(
            [
                "stop",
                "trial ended by",
                ", ".join(
                    f"{how} ({count})" for how, count in ended["original"].items()
                ),
                ", ".join(f"{how} ({count})" for how, count in ended["localx"].items()),
                "",
            ]
        )
        out.append(table(["", ""] + head[2:], rows))
        out.append(
            "reference: the same trial SIGTERMed directly by the harness (no backend) has exited after "
            f"{fmt_time(s['stop']['reference_direct_sigterm_s'])}"
        )
        out.append("")
    if s["start"]:
        n = result["settings"]["trials"]
        out.append(f"Trial start (median of {n}, after one warm-up start each)")
        names = {
            "returned": "start_trial() returns",
            "first_metric": "first metric fetched",
        }
        rows = [
            [
                "start",
                name,
                fmt_time(s["start"][f]["original_s"]),
                fmt_time(s["start"][f]["localx_s"]),
                fmt_ratio(s["start"][f]["ratio"]),
            ]
            for f, name in names.items()
        ]
        out.append(table(["", ""] + head[2:], rows))
        out.append(
            "reference: `python -S -I -c pass` (how the guard starts) takes "
            f"{fmt_time(s['start']['reference_bare_interpreter_s'])}"
        )
        out.append("")
    m = result["machine"]
    out.append(
        f"{m['date']}, {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, "
        f"syne-tune {m['syne_tune']}, syne-tune-localx {m['localx']} ({m['commit']}), "
        f"load {m['load_before']} -> {m['load_after']}, run took {result['wall_s']:.0f} s"
    )
    return "\n".join(out)


def machine_info() -> dict:
    import syne_tune

    import syne_tune_localx

    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": cpus,
        "cpu_model": model,
        "memory_gib": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        ),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "syne_tune": syne_tune.__version__,
        "localx": syne_tune_localx.__version__,
        "commit": commit,
        "load_before": round(os.getloadavg()[0], 2),
    }


# ----------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Measure syne-tune's LocalBackend and LocalXBackend side by side "
        "(poll cost vs log size, stop latency, trial start); ratios are original / localx."
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller run (<40 s): sizes {QUICK['sizes']}, {QUICK['reps']} "
        f"repetitions, {QUICK['trials']} trials",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the raw samples, summary and machine info as JSON here",
    )
    p.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="comma-separated log sizes in lines (default "
        f"{','.join(map(str, FULL['sizes']))}, --quick {','.join(map(str, QUICK['sizes']))})",
    )
    p.add_argument(
        "--reps",
        type=int,
        default=None,
        help=f"poll repetitions per size below {LARGE:,} lines "
        f"(default {FULL['reps']}, --quick {QUICK['reps']})",
    )
    p.add_argument(
        "--reps-large",
        type=int,
        default=None,
        help=f"poll repetitions per size of {LARGE:,} lines and more "
        f"(default {FULL['reps_large']}, --quick {QUICK['reps_large']})",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        help="trials started (and stopped) per backend for start and stop "
        f"(default {FULL['trials']}, --quick {QUICK['trials']})",
    )
    p.add_argument(
        "--plain-every",
        type=int,
        default=10,
        help="one plain (non-metric) log line every N lines; 0 for metric lines "
        "only (default 10)",
    )
    p.add_argument(
        "--only",
        choices=("poll", "stop", "start"),
        action="append",
        help="run only this measurement (may be repeated)",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    preset = QUICK if args.quick else FULL
    settings = {
        "quick": args.quick,
        "sizes": args.sizes or preset["sizes"],
        "reps": args.reps or preset["reps"],
        "reps_large": args.reps_large or preset["reps_large"],
        "trials": args.trials or preset["trials"],
        "plain_every": args.plain_every,
        "appended_lines": APPENDED_LINES,
        "only": args.only or ["start", "stop", "poll"],
    }
    out_path = args.out.expanduser().absolute() if args.out else None
    started = time.perf_counter()
    machine = machine_info()
    cwd = os.getcwd()
    root = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    h = Harness(root)
    # nothing either backend might write into the working folder or the default
    # experiment folder lands outside the temporary folder
    os.environ["SYNETUNE_FOLDER"] = str(root / "syne-tune")
    os.chdir(root)

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    raw = {}
    try:
        print(
            f"benchmarking in {root} ({'quick' if args.quick else 'full'} run)",
            flush=True,
        )
        if "start" in settings["only"]:
            raw["start"] = bench_start(h, settings["trials"])
        if "stop" in settings["only"]:
            raw["stop"] = bench_stop(h, settings["trials"])
        if "poll" in settings["only"]:
            raw["poll"] = bench_poll(
                h,
                settings["sizes"],
                settings["reps"],
                settings["reps_large"],
                args.plain_every,
            )
    except KeyboardInterrupt as err:
        print(
            f"interrupted ({err or 'Ctrl-C'}); trials ended and {root} removed",
            file=sys.stderr,
        )
        return 130
    finally:
        os.chdir(cwd)
        h.cleanup()
    machine["load_after"] = round(os.getloadavg()[0], 2)
    result = {
        "machine": machine,
        "settings": settings,
        "wall_s": time.perf_counter() - started,
        "summary": summarize(raw),
        "raw": raw,
    }
    print()
    print(report(result))
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=1))
        print(f"\nJSON written to {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
