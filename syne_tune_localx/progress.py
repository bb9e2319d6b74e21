"""Tuner callbacks of the ``syne-tune-localx`` command: a one-line progress
display, a check that the trials report the metric the experiment optimises,
and the handling of Ctrl+C and SIGTERM while the tuner runs.

All are plain :class:`~syne_tune.tuner_callback.TunerCallback` objects, usable
with any :class:`~syne_tune.Tuner`. ``Tuner.save`` pickles its callbacks, so
they drop their stream and tuner references when pickled.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import threading
import time
from collections import Counter
from typing import Any, TextIO

from syne_tune.tuner_callback import TunerCallback

from syne_tune_localx.errors import LocalXError

_BAR_WIDTH = 12


class MetricNotReportedError(LocalXError):
    """The trials do not report a metric the experiment needs."""


def _user_keys(result: dict) -> list[str]:
    return sorted(k for k in result if not k.startswith("st_"))


class MetricCheck(TunerCallback):
    """Stops tuning with a clear message when a trial's result lacks the metric
    (or the scheduler's ``time_attr``), or a trial ends normally without
    reporting anything.

    Every scheduler of syne-tune reads the metric from each result (ASHA and
    PBT also ``time_attr``), so a result without it would end in a ``KeyError``
    deep inside the scheduler; this callback sees the results first.

    :param metrics: Metric names every result must hold
    :param time_attr: The scheduler's progress attribute, if it has one
    :param origin: Where the metric was named, for the message (e.g. the file)
    """

    def __init__(self, metrics: list[str], time_attr: str | None = None, origin: str = "the experiment"):
        self.metrics = list(metrics)
        self.time_attr = time_attr
        self.origin = origin
        self.error: MetricNotReportedError | None = None
        self._reported: set[int] = set()
        self._backend = None

    def on_tuning_start(self, tuner):
        self._backend = tuner.trial_backend

    def _where(self, trial_id: int) -> str:
        try:
            return f"{self._backend.trial_path(trial_id)}/std.out"
        except Exception:  # noqa: BLE001 -- a backend without local trial folders
            return f"the log of trial {trial_id}"

    def _suggest(self, name: str, reported: list[str]) -> str:
        import difflib

        close = difflib.get_close_matches(name, reported, n=1, cutoff=0.3)
        # a progress counter is rarely the metric someone meant
        counters = ("epoch", "step", "iter", "time")
        others = [
            k for k in reported if k != self.time_attr and not any(c in k.lower() for c in counters)
        ] or reported
        return close[0] if close else (others[0] if others else "...")

    def _fail(self, message: str):
        self.error = MetricNotReportedError(message)
        raise self.error

    def on_fetch_status_results(self, trial_status_dict, new_results):
        for trial_id, result in new_results:
            self._reported.add(trial_id)
            reported = _user_keys(result)
            for name in self.metrics:
                if name not in result:
                    self._fail(
                        f"Trial {trial_id} reported {', '.join(map(repr, reported)) or 'nothing'} "
                        f"but not {name!r}, the metric the experiment optimises (`metric:` in "
                        f"{self.origin}). Set the metric to a name the script reports "
                        f"(e.g. --set metric={self._suggest(name, reported)}), or make the "
                        f"training script report {name!r}. The trial's output is in "
                        f"{self._where(trial_id)}."
                    )
            if self.time_attr is not None and self.time_attr not in result:
                self._fail(
                    f"Trial {trial_id} reported {', '.join(map(repr, reported))} but not "
                    f"{self.time_attr!r}, which the scheduler uses to measure progress "
                    f"(scheduler.options.time_attr in {self.origin}). Set time_attr to a "
                    f"counter the script reports with every result (such as epoch), or "
                    f"report {self.time_attr!r}. The trial's output is in {self._where(trial_id)}."
                )
        from syne_tune.backend.trial_status import Status

        for trial_id, (_, status) in trial_status_dict.items():
            if status == Status.completed and trial_id not in self._reported:
                self._fail(
                    f"Trial {trial_id} ended normally without reporting any result, so "
                    f"{', '.join(map(repr, self.metrics))} never arrived. The training script "
                    "must report after each epoch, e.g. `report = "
                    "syne_tune_localx.trial.Reporter(); report(epoch=1, "
                    f"{self.metrics[0]}=...)` (syne_tune.Reporter works too), and report "
                    "once even when it resumes from a checkpoint with nothing left to train. "
                    f"Its output is in {self._where(trial_id)}."
                )

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_backend"] = None
        return state


def stop_fraction(stop: dict, status) -> tuple[float | None, str]:
    """How much of the budget is used, and a short text for it.

    :param stop: Fields of the :class:`~syne_tune.StoppingCriterion`
    :param status: The tuner's :class:`~syne_tune.tuning_status.TuningStatus`
    :return: ``(fraction or None, text)``, the criterion closest to firing
    """
    elapsed = status.wallclock_time
    candidates = []
    if stop.get("max_wallclock_time"):
        budget = stop["max_wallclock_time"]
        candidates.append((elapsed / budget, f"{_seconds(elapsed)}/{_seconds(budget)}"))
    counters = (
        ("max_num_trials_started", status.num_trials_started, "trials started"),
        ("max_num_trials_completed", status.num_trials_completed, "trials completed"),
        ("max_num_trials_finished", status.num_trials_finished, "trials finished"),
        ("max_num_evaluations", status.overall_metric_statistics.count, "results"),
    )
    for key, value, label in counters:
        if stop.get(key):
            candidates.append((value / stop[key], f"{value}/{stop[key]} {label}"))
    if not candidates:
        return None, _seconds(elapsed)
    fraction, text = max(candidates, key=lambda c: c[0])
    if not stop.get("max_wallclock_time"):
        text = f"{text}, {_seconds(elapsed)}"
    return min(fraction, 1.0), text


def stop_reason(stop: dict, status, max_failures: int | None = None) -> str:
    """Which criterion ended the experiment, in words ('' if none did)."""
    checks = [
        ("max_wallclock_time", status.wallclock_time, "the wall-clock budget of {v} s was used"),
        ("max_num_trials_started", status.num_trials_started, "more than {v} trials were started"),
        ("max_num_trials_completed", status.num_trials_completed, "more than {v} trials completed"),
        ("max_num_trials_finished", status.num_trials_finished, "more than {v} trials finished"),
        ("max_num_evaluations", status.overall_metric_statistics.count, "more than {v} results arrived"),
    ]
    for key, value, text in checks:
        limit = stop.get(key)
        if limit is not None and value > limit:
            return text.format(v=_number(limit))
    if max_failures is not None and status.num_trials_failed > max_failures:
        return f"more than {max_failures} trial(s) failed"
    stats = status.overall_metric_statistics
    for key, compare, word in (("max_metric_value", max, "above"), ("min_metric_value", min, "below")):
        thresholds = stop.get(key) or {}
        observed = stats.max_metrics if compare is max else stats.min_metrics
        for metric, threshold in thresholds.items():
            if metric in observed and (
                observed[metric] > threshold if compare is max else observed[metric] < threshold
            ):
                return f"{metric} went {word} {threshold}"
    return ""


def status_counts(status) -> Counter:
    """Number of trials per status (syne-tune's ``Status`` strings)."""
    return Counter(status.last_trial_status_seen.values())


def counts_text(counts: Counter, running_label: str = "running") -> str:
    """e.g. ``4 completed, 2 stopped, 2 running, 0 failed``.

    :param counts: From :func:`status_counts`
    :param running_label: How to call the trials still running
    """
    from syne_tune.backend.trial_status import Status

    parts = [f"{counts[Status.completed]} completed"]
    stopped = counts[Status.stopped] + counts[Status.stopping]
    if stopped:
        parts.append(f"{stopped} stopped")
    if counts[Status.paused]:
        parts.append(f"{counts[Status.paused]} paused")
    if counts[Status.in_progress] or running_label == "running":
        parts.append(f"{counts[Status.in_progress]} {running_label}")
    parts.append(f"{counts[Status.failed]} failed")
    return ", ".join(parts)


class ProgressCallback(TunerCallback):
    """A progress line, redrawn in place while the tuner runs::

        [====>       ]  42% 25s/60s | 9 trials: 4 completed, 3 stopped, 2 running, 0 failed | best accuracy 0.9644 (trial 3)

    "stopped" counts the trials the scheduler stopped (ASHA also stops a trial
    that reaches ``max_t``). :attr:`final_counts` holds the counts as tuning
    ended, before syne-tune marks the trials still running as stopped.

    :param metric: The metric to show the best value of
    :param mode: ``"min"`` or ``"max"``
    :param stop: Fields of the stopping criterion (the budget shown)
    :param stream: Where to draw (a terminal)
    :param live: Draw while running; if ``False`` the callback only tracks the
        best result (the command prints a summary at the end)
    :param interval: Least seconds between two redraws
    """

    def __init__(
        self,
        metric: str,
        mode: str,
        stop: dict,
        stream: TextIO | None = None,
        live: bool = True,
        interval: float = 0.25,
    ):
        self.metric = metric
        self.mode = mode
        self.stop = dict(stop)
        self.stream = stream
        self.live = live and stream is not None
        self.interval = interval
        self.best: tuple[float, int] | None = None  # (value, trial_id)
        self.final_counts: Counter | None = None
        self._tuner = None
        self._last_draw = 0.0
        self._drawn = False

    # --- callback hooks -------------------------------------------------
    def on_tuning_start(self, tuner):
        self._tuner = tuner

    def on_trial_result(self, trial, status: str, result: dict[str, Any], decision: str):
        value = result.get(self.metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return
        if self.best is None or (value < self.best[0] if self.mode == "min" else value > self.best[0]):
            self.best = (float(value), trial.trial_id)

    def on_loop_end(self):
        if self.live and time.monotonic() - self._last_draw >= self.interval:
            self.draw()

    def on_tuning_end(self):
        if self._tuner is not None and self._tuner.tuning_status is not None:
            self.final_counts = status_counts(self._tuner.tuning_status)
            if self.live:
                self.draw()
        self.finish()

    # --- drawing --------------------------------------------------------
    def line(self) -> str:
        """The progress line for the tuner's current status."""
        status = self._tuner.tuning_status if self._tuner is not None else None
        if status is None:
            return "starting..."
        fraction, budget = stop_fraction(self.stop, status)
        if fraction is None:
            bar = ""
        else:
            filled = round(fraction * _BAR_WIDTH)
            arrow = ">" if 0 < filled < _BAR_WIDTH else ""
            bar = "[" + ("=" * filled)[: _BAR_WIDTH - len(arrow)] + arrow
            bar = bar.ljust(_BAR_WIDTH + 1) + f"] {fraction * 100:3.0f}% "
        best = (
            f"best {self.metric} {_number(self.best[0])} (trial {self.best[1]})"
            if self.best is not None
            else f"best {self.metric}: -"
        )
        return (
            f"{bar}{budget} | {status.num_trials_started} trials: "
            f"{counts_text(status_counts(status))} | {best}"
        )

    def draw(self) -> None:
        if self.stream is None:
            return
        width = shutil.get_terminal_size((120, 20)).columns
        text = self.line()
        if len(text) >= width:
            text = text[: max(width - 2, 10)] + "…"
        # carriage return and erase-to-end-of-line redraw the line in place
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._last_draw = time.monotonic()
        self._drawn = True

    def finish(self) -> None:
        """End the progress line, so that what follows starts on a new line."""
        if self._drawn and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["stream"] = None
        state["_tuner"] = None
        state["live"] = False
        return state


class TuningInterrupted(KeyboardInterrupt):
    """Raised inside :meth:`Tuner.run <syne_tune.Tuner.run>` on Ctrl+C or
    SIGTERM, so that the tuner ends through its own ``finally`` block (results
    and ``tuner.dill`` saved, trials stopped gracefully).

    :param signum: The signal
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopOnSignal(TunerCallback):
    """Ctrl+C (SIGINT) and SIGTERM handled alike while the tuner runs.

    * The first signal makes the tuner stop at its next step (between two
      polls, never in the middle of a backend call): it raises
      :class:`TuningInterrupted` from a callback, and the tuner's ``finally``
      block saves the results and stops the running trials gracefully. One line
      says so, with the number of trials and their grace period.
    * A signal while the trials are being stopped (a second one, or the first
      when the tuner was ending anyway) kills them at once (SIGKILL to each
      trial's process tree, for backends that tell its pids:
      ``trial_process_ids``); the tuner's ``finally`` block then completes.
      With other backends the interruption propagates, as Python's default
      would. A second signal before the tuner reached its next step
      interrupts it where it is.

    Use :meth:`installed` around ``tuner.run()``: the handlers are installed
    for that time only, and the previous ones restored.

    :param stream: Where the line goes (the terminal)
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.signum: int | None = None
        self.count = 0  # signals received
        self.killed_trials: set[int] = set()  # trials killed by a repeated signal
        self._pending = False  # a signal the tuner has not acted on yet
        self._raised = False
        self._ending = False  # the tuner is in its finally block
        self._tuner = None

    # --- installation ---------------------------------------------------
    @contextlib.contextmanager
    def installed(self):
        """Handle SIGINT and SIGTERM in this block (main thread only; elsewhere
        nothing is installed)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {}
        try:
            for signum in self.SIGNALS:
                previous[signum] = signal.signal(signum, self._handle)
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, signum, frame):
        self.count += 1
        if self.signum is None:
            self.signum = signum
        if self._ending or self._raised:
            self._kill_trials()
            return
        if self._pending:
            # the tuner did not reach its next step in time: interrupt it here
            self._interrupt()
        self._pending = True

    def _interrupt(self):
        self._pending = False
        self._raised = True
        raise TuningInterrupted(self.signum)

    def _kill_trials(self) -> None:
        backend = getattr(self._tuner, "trial_backend", None)
        process_ids = getattr(backend, "trial_process_ids", None)
        if process_ids is None:
            raise KeyboardInterrupt
        for trial_id in list(getattr(backend, "trial_ids", [])):
            pids = process_ids(trial_id)
            if pids:
                self.killed_trials.add(trial_id)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    @property
    def killed(self) -> int:
        """Number of trials a repeated signal killed."""
        return len(self.killed_trials)

    # --- callback hooks -------------------------------------------------
    def on_tuning_start(self, tuner):
        self._tuner = tuner
        self._check()

    def _check(self):
        if self._pending and not self._ending:
            self._interrupt()

    def on_loop_start(self):
        self._check()

    def on_loop_end(self):
        self._check()

    def on_tuning_sleep(self, sleep_time: float):
        self._check()

    def on_tuning_end(self):
        self._ending = True
        self._pending = False
        if self.signum is not None:
            self._say_stopping()

    def _say_stopping(self) -> None:
        if self.stream is None:
            return
        status = getattr(self._tuner, "tuning_status", None)
        running = status.num_trials_running if status is not None else 0
        grace = getattr(getattr(self._tuner, "trial_backend", None), "stop_grace_period", None)
        if self.signum == signal.SIGINT:
            head, again = "Interrupted", "press Ctrl+C again"
        else:
            head, again = f"Terminated ({signal.Signals(self.signum).name})", (
                f"send {signal.Signals(self.signum).name} again"
            )
        if running:
            period = f"grace period {_number(grace)} s; " if grace is not None else ""
            line = (
                f"{head}: stopping {running} running trial{'s' if running != 1 else ''} "
                f"({period}{again} to kill them now)"
            )
        else:
            line = f"{head}: saving the results"
        self.stream.write(line + "\n")
        self.stream.flush()

    def __getstate__(self):
        # a resumed tuner starts without the signals of this run
        return {
            "stream": None,
            "signum": None,
            "count": 0,
            "killed_trials": set(),
            "_pending": False,
            "_raised": False,
            "_ending": False,
            "_tuner": None,
        }


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f}s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 120:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
