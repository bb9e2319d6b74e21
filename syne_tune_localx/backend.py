"""``LocalXBackend``: syne-tune's local backend, made right.

The backend owns the trial life cycle; everything about *what* runs comes from
the mixins' hooks (:mod:`syne_tune_localx.hooks`), *how* it runs from
:mod:`syne_tune_localx.process`, and the metrics from
:mod:`syne_tune_localx.metrics`.
"""

import atexit
import logging
import math
import os
import shlex
import shutil
import sys
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from syne_tune_localx._compat import (
    BUSY_STATUS,
    ST_WORKER_TIMESTAMP,
    Status,
    TrialBackend,
    TrialResult,
)
from syne_tune_localx._guard import descendants
from syne_tune_localx.arguments import JsonArgsMixin
from syne_tune_localx.checkpoints import CheckpointMixin
from syne_tune_localx.errors import ConfigurationError, LaunchError
from syne_tune_localx.gpu import GpuRotationMixin
from syne_tune_localx.metrics import MetricReader
from syne_tune_localx.process import LaunchSpec, TrialProcess, launching_process

logger = logging.getLogger(__name__)

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
RECORD_FILE_NAME = "process.json"
DEFAULT_GRACE_PERIOD = 10.0

# backends with trials that may still run, ended when the interpreter exits
_LIVE_BACKENDS: "weakref.WeakSet[LocalXBackend]" = weakref.WeakSet()


@atexit.register
def _end_live_trials() -> None:
    for backend in list(_LIVE_BACKENDS):
        try:
            backend._end_all_processes()
        except KeyboardInterrupt:
            pass  # _end_all_processes killed what was left; no traceback at exit


@dataclass
class _TrialRun:
    """What the backend knows of one trial's current attempt."""

    attempt: int
    process: TrialProcess | None
    reader: MetricReader
    metrics: list = field(default_factory=list)
    requested: str | None = None  # None, Status.paused or Status.stopped
    ended: bool = False
    record: dict | None = None
    end_time: datetime | None = None
    pending: dict | None = None  # config of a trial accepted but not launched yet
    warned_timestamp: bool = False
    wait_reason: str | None = None


def _as_argv(binary: str | list[str] | None) -> list[str]:
    if binary is None:
        return [sys.executable]
    if isinstance(binary, str):
        try:
            argv = shlex.split(binary)
        except ValueError as err:
            raise ConfigurationError(
                f"binary={binary!r} cannot be split into arguments ({err}); close the "
                f"quote, or give binary as a list of arguments"
            ) from err
    elif isinstance(binary, (list, tuple)):
        argv = [str(x) for x in binary]
    else:
        raise ConfigurationError(
            f"binary={binary!r} must be a string or a list of strings, e.g. "
            f"binary=['torchrun', '--nproc_per_node=2']"
        )
    if not argv:
        raise ConfigurationError(
            f"binary={binary!r} is empty; give the program that runs the entry point, "
            f"e.g. binary='python' or binary=['torchrun', '--nproc_per_node=2'], or "
            f"leave it out to use {sys.executable}"
        )
    program = argv[0]
    found = shutil.which(program)
    if found is None:
        raise ConfigurationError(
            f"binary {program!r} was not found or is not executable (searched PATH "
            f"and the path as given); pass the full path of an executable as binary"
        )
    return argv


class LocalXBackend(GpuRotationMixin, JsonArgsMixin, CheckpointMixin, TrialBackend):
    """
    A backend running each trial as a local process, a drop-in for syne-tune's
    :class:`~syne_tune.backend.LocalBackend` that passes every config value
    intact, stops trials gracefully and reads metrics incrementally.

    Additional arguments on top of parent class
    :class:`~syne_tune.backend.trial_backend.TrialBackend`:

    :param entry_point: Path to the script to be tuned
    :param binary: What runs the entry point: a program, or a launcher with its
        own arguments as a list or a string (split like a shell would, but no
        shell runs), e.g. ``"torchrun --standalone --nproc_per_node=4"``.
        Defaults to the current Python interpreter.
    :param rotate_gpus: If several GPUs are present, each trial is scheduled on
        a different GPU: a free one first, otherwise the one with fewest prior
        assignments. If ``False``, all trials see all GPUs. Defaults to ``True``.
    :param num_gpus_per_trial: Number of GPUs given to each trial; ``0`` runs
        CPU-only trials that see no GPU. Defaults to 1
    :param gpus_to_use: Positions among the GPUs visible to the tuner that
        trials may use (all by default); honoured with a single entry too.
    :param stop_grace_period: Seconds a trial has between SIGTERM and SIGKILL
        when it is stopped or paused (to write a checkpoint). ``0`` allowed.
        Defaults to 10
    :param threads_per_trial: Sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
        ``OPENBLAS_NUM_THREADS``, ``NUMEXPR_NUM_THREADS`` and
        ``VECLIB_MAXIMUM_THREADS`` for trials (never for the tuner). Defaults
        to ``None``: 1 for each variable the environment does not set already.
    :param separate_working_dirs: If ``True``, each trial runs in its own
        working folder ``<trial folder>/workdir``, so relative paths written by
        concurrent trials do not collide. Defaults to ``False`` (the tuner's
        working folder, as syne-tune does).
    :param kwargs: GPU placement options of
        :class:`~syne_tune_localx.gpu.GpuRotationMixin`, all off by default:
        ``trials_per_gpu``, ``gpu_memory_per_trial``, ``gpu_min_free_memory``,
        ``gpu_max_utilization``, ``gpu_poll_interval``, ``gpu_inventory``
    """

    def __init__(
        self,
        entry_point: str,
        binary: str | list[str] | None = None,
        delete_checkpoints: bool = False,
        pass_args_as_json: bool = False,
        rotate_gpus: bool = True,
        num_gpus_per_trial: int = 1,
        gpus_to_use: list[int] | None = None,
        stop_grace_period: float = DEFAULT_GRACE_PERIOD,
        threads_per_trial: int | None = None,
        separate_working_dirs: bool = False,
        **kwargs,
    ):
        for name, value in (
            ("delete_checkpoints", delete_checkpoints),
            ("pass_args_as_json", pass_args_as_json),
            ("separate_working_dirs", separate_working_dirs),
        ):
            if not isinstance(value, bool):
                # "false" from a config file is truthy: refuse rather than guess
                raise ConfigurationError(
                    f"{name}={value!r} must be True or False (a {type(value).__name__} was "
                    f"given); fix the {name} option of LocalXBackend"
                )
        super().__init__(
            delete_checkpoints=delete_checkpoints,
            pass_args_as_json=pass_args_as_json,
            rotate_gpus=rotate_gpus,
            num_gpus_per_trial=num_gpus_per_trial,
            gpus_to_use=gpus_to_use,
            **kwargs,
        )
        self.set_entrypoint(entry_point)
        self.binary = _as_argv(binary)
        if (
            isinstance(stop_grace_period, bool)
            or not isinstance(stop_grace_period, (int, float))
            or not math.isfinite(stop_grace_period)
            or stop_grace_period < 0
        ):
            raise ConfigurationError(
                f"stop_grace_period={stop_grace_period!r} must be a finite number of "
                f"seconds >= 0 (0: SIGKILL right after SIGTERM); fix the argument of LocalXBackend"
            )
        self.stop_grace_period = float(stop_grace_period)
        if threads_per_trial is not None and (
            isinstance(threads_per_trial, bool)
            or not isinstance(threads_per_trial, int)
            or threads_per_trial < 1
        ):
            raise ConfigurationError(
                f"threads_per_trial={threads_per_trial!r} must be a positive int, or "
                f"None for 1 thread where the environment sets none"
            )
        self.threads_per_trial = threads_per_trial
        self.separate_working_dirs = bool(separate_working_dirs)
        self._runs: dict[int, _TrialRun] = {}
        # trials running or waiting to start: what a poll looks at, so its cost
        # does not grow with the number of trials that ended
        self._unfinished: set[int] = set()
        self._adopt_orphans_on_use = False
        self._moved_stale_folders = False
        self.local_path: Path | None = None
        # like LocalBackend: a default folder until the Tuner sets one
        from syne_tune.util import experiment_path, random_string

        self.set_path(str(experiment_path(tuner_name=random_string(length=10))))

    @classmethod
    def from_function(cls, fn, payload_dir: str | None = None, **backend_options) -> "LocalXBackend":
        """A backend whose trials call the Python function ``fn`` instead of a script.

        ``fn`` is serialised with dill (closures, lambdas and functions defined
        in ``__main__`` or a notebook work) and called as ``fn(**config)``; a
        parameter named ``report`` receives a
        :class:`~syne_tune_localx.trial.Reporter`, one named ``checkpoint_dir``
        the trial's checkpoint folder, and a returned dict is reported as the
        last result. See :mod:`syne_tune_localx.function`.

        :param fn: The function to tune
        :param payload_dir: Folder for the serialised function (default
            ``<syne-tune results root>/.localx-functions``)
        :param backend_options: Any other option of this class, except
            ``entry_point`` and ``binary``
        :return: The backend
        """
        from syne_tune_localx.function import backend_from_function

        return backend_from_function(cls, fn, payload_dir=payload_dir, **backend_options)

    # ------------------------------------------------------------------
    # paths
    # ------------------------------------------------------------------
    def trial_path(self, trial_id: int) -> Path:
        """
        :param trial_id: ID of trial
        :return: Directory where files related to trial are written to
        """
        return self.local_path / str(trial_id)

    def trial_visible_path(self, trial_id: int) -> Path:
        return self.trial_path(trial_id)

    def set_path(self, results_root: str | None = None, tuner_name: str | None = None):
        """
        :param results_root: The local folder that holds one folder per trial.
            The :class:`~syne_tune.Tuner` sets it to its own results folder.
        :param tuner_name: Name of the tuner (unused locally)
        """
        if results_root is not None:
            self.local_path = Path(results_root).expanduser().absolute()

    def entrypoint_path(self) -> Path:
        """
        :return: Entrypoint path of script to be executed
        """
        return Path(self.entry_point)

    def set_entrypoint(self, entry_point: str):
        """Update the entrypoint.

        :param entry_point: New path of the entrypoint.
        """
        if not isinstance(entry_point, (str, os.PathLike)):
            raise ConfigurationError(
                f"entry_point={entry_point!r} must be the path of the training script "
                f"(a str or Path); pass it to LocalXBackend"
            )
        path = Path(entry_point).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"entry_point {str(entry_point)!r} is not a file (looked in "
                f"{path.absolute()}); pass the path of the training script to LocalXBackend"
            )
        self.entry_point = str(path.absolute())

    def stdout(self, trial_id: int) -> list[str]:
        """Fetch ``stdout`` log for trial

        :param trial_id: ID of trial
        :return: Lines of the log of the trial (stdout)
        """
        return self._read_lines(self.trial_path(trial_id) / "std.out")

    def stderr(self, trial_id: int) -> list[str]:
        """Fetch ``stderr`` log for trial

        :param trial_id: ID of trial
        :return: Lines of the log of the trial (stderr)
        """
        return self._read_lines(self.trial_path(trial_id) / "std.err")

    @staticmethod
    def _read_lines(path: Path) -> list[str]:
        try:
            with open(path, errors="replace") as f:
                return f.readlines()
        except FileNotFoundError:
            return []

    def process_record(self, trial_id: int) -> dict | None:
        """How the latest attempt of a trial ended: exit code or signal, cause,
        start and end time, wall time, CPU user and system seconds and peak
        memory of the process tree (bytes). Also in
        ``<trial folder>/process.json``.

        :param trial_id: ID of trial
        :return: The record, or ``None`` while the trial runs
        """
        run = self._runs.get(trial_id)
        if run is None:
            return None
        self._refresh(trial_id)
        return run.record

    # ------------------------------------------------------------------
    # launching
    # ------------------------------------------------------------------
    def start_trial(
        self, config: dict[str, Any], checkpoint_trial_id: int | None = None
    ) -> TrialResult:
        """Start new trial with new trial ID. If the launch fails, a
        :class:`~syne_tune_localx.errors.LaunchError` is raised and the backend
        is left as if the trial had never been asked for.

        :param config: Configuration for new trial
        :param checkpoint_trial_id: If given, the new trial starts from the
            checkpoint written by this previous trial
        :return: New trial, which includes new trial ID
        """
        self._adopt_orphans()
        self._refuse_if_owned_elsewhere("start a trial")
        trial_id = self.new_trial_id()
        self._make_trial_folder(trial_id, fresh=True)
        try:
            if checkpoint_trial_id is not None:
                self.copy_checkpoint(src_trial_id=checkpoint_trial_id, tgt_trial_id=trial_id)
            self._schedule(trial_id=trial_id, config=config)
        except Exception:
            self._runs.pop(trial_id, None)
            self._unfinished.discard(trial_id)
            shutil.rmtree(self.trial_path(trial_id), ignore_errors=True)
            raise
        self.trial_ids.append(trial_id)
        trial = TrialResult(
            trial_id=trial_id,
            config=config,
            creation_time=datetime.now(),
            status=Status.in_progress,
            metrics=self._runs[trial_id].metrics,
        )
        self._trial_dict[trial_id] = trial
        return trial

    def _make_trial_folder(self, trial_id: int, fresh: bool) -> Path:
        path = self.trial_path(trial_id)
        owner = launching_process(path) if fresh else None
        if owner is not None:
            raise LaunchError(
                f"the results folder {path.parent} is in use by another tuner (pid {owner}): "
                f"{path} belongs to one of its running trials. Give this tuner a folder of "
                f"its own (a different tuner_name, suffix_tuner_name=True, or "
                f"trial_backend_path=...)"
            )
        if fresh and path.exists():
            # left by an earlier experiment in a reused results folder: its logs
            # and checkpoints must not leak into the new trial
            stale = path.with_name(f"{path.name}.stale-{int(time.time() * 1000)}")
            log = logger.debug if self._moved_stale_folders else logger.warning
            log(
                f"trial folder {path} already exists (results folder reused?); moved it to "
                f"{stale}" + ("" if self._moved_stale_folders else ", and so on for later trials")
            )
            self._moved_stale_folders = True
            path.rename(stale)
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".localx-write-test"
            probe.touch()
            probe.unlink()
        except OSError as err:
            raise LaunchError(
                f"cannot write the trial folder {path} ({err.strerror or err}); give the "
                f"Tuner a writable folder (trial_backend_path=... or the "
                f"SYNETUNE_FOLDER environment variable), or call set_path()"
            ) from err
        return path

    def _schedule(self, trial_id: int, config: dict[str, Any]):
        run = self._runs.get(trial_id)
        trial_path = self._make_trial_folder(trial_id, fresh=False)
        if run is None:
            run = _TrialRun(
                attempt=-1,
                process=None,
                reader=MetricReader(trial_path / "std.out", trial_id),
            )
            self._runs[trial_id] = run
        # fail now on what can never launch (a value the arguments cannot carry),
        # not later when a waiting trial gets its turn
        self._config_arguments(trial_id, config)
        self._trial_files(trial_id, config)
        run.requested = None
        run.ended = False
        run.record = None
        run.end_time = None
        run.process = None
        run.pending = config
        run.wait_reason = None
        self._unfinished.add(trial_id)
        self._start_if_possible(trial_id)

    def _start_pending(self) -> None:
        """Launch waiting trials, oldest first, as far as they may start now."""
        pending = sorted(t for t in self._unfinished if self._runs[t].pending is not None)
        if pending:
            # what a waiting trial waits for may be held by a trial the tuner no
            # longer asks about (stopped, or its end not fetched yet): notice
            # every process end first, so that its resources are released
            for trial_id in list(self._unfinished):
                self._refresh(trial_id)
        for trial_id in pending:
            try:
                self._start_if_possible(trial_id)
            except LaunchError as err:
                # accepted earlier, so the tuner learns of it as a failed trial
                run = self._runs[trial_id]
                run.pending = None
                self._mark_ended(trial_id)
                run.record = {"exit_code": None, "cause": f"launch failed: {err}"}
                with open(self.trial_path(trial_id) / "std.err", "a") as f:
                    f.write(f"[localx] {err}\n")
                logger.error(str(err))

    def _start_if_possible(self, trial_id: int) -> None:
        run = self._runs[trial_id]
        config = run.pending
        reason = self._trial_wait_reason(trial_id, config)
        if reason is not None:
            if reason != run.wait_reason:
                logger.info(f"trial {trial_id} waits: {reason}")
            run.wait_reason = reason
            return
        self._launch(trial_id, config, attempt=run.attempt + 1)
        run.attempt += 1
        run.pending = None
        run.wait_reason = None
        _LIVE_BACKENDS.add(self)

    def _launch(self, trial_id: int, config: dict[str, Any], attempt: int) -> None:
        trial_path = self.trial_path(trial_id)
        argv = (
            self.binary
            + [self.entry_point]
            + self._config_arguments(trial_id, config)
            + self._extra_trial_arguments(trial_id, config)
        )
        files = self._trial_files(trial_id, config)
        env = self._trial_environment(trial_id, config)
        spec = LaunchSpec(
            trial_id=trial_id,
            attempt=attempt,
            argv=argv,
            env=env,
            trial_path=str(trial_path),
            cwd=str(trial_path / "workdir") if self.separate_working_dirs else None,
            files=files,
            folders=self._trial_folders(trial_id),
            stdout=str(trial_path / "std.out"),
            stderr=str(trial_path / "std.err"),
            record=str(trial_path / RECORD_FILE_NAME),
            grace_period=self.stop_grace_period,
        )
        process = TrialProcess(spec)
        try:
            process.start()
        except OSError as err:
            self._on_trial_process_end(trial_id)
            raise LaunchError(
                f"cannot launch trial {trial_id}: {err}; check the binary "
                f"{self.binary[0]!r}, the entry point and the trial folder {trial_path}"
            ) from err
        logger.info(f"trial {trial_id} started (pid {process.pid}): {shlex.join(argv)}")
        self._runs[trial_id].process = process

    def trial_process_ids(self, trial_id: int) -> set[int]:
        """
        :param trial_id: ID of trial
        :return: Process IDs of the trial's current launch while it runs: its
            guard and everything below it (the guard is a subreaper, so
            helpers the trial detached are included); empty otherwise
        """
        run = self._runs.get(trial_id)
        if run is None or run.process is None or run.ended or run.process.pid is None:
            return set()
        pid = run.process.pid
        return {pid, *descendants(pid)}

    def waiting_trials(self) -> dict[int, str]:
        """
        :return: ``{trial_id: reason}`` for trials accepted but not started
            yet, because a resource they need is not available
        """
        return {
            trial_id: run.wait_reason or "not started yet"
            for trial_id, run in ((t, self._runs[t]) for t in sorted(self._unfinished))
            if run.pending is not None
        }

    def _trial_environment(self, trial_id: int, config: dict[str, Any]) -> dict[str, str]:
        env = super()._trial_environment(trial_id, config)
        for name in THREAD_VARIABLES:
            if self.threads_per_trial is not None:
                env[name] = str(self.threads_per_trial)
            elif name not in os.environ:
                env[name] = "1"
        env["SYNE_TUNE_LOCALX_TRIAL_ID"] = str(trial_id)
        return env

    # ------------------------------------------------------------------
    # pause, resume, stop
    # ------------------------------------------------------------------
    def _request_end(self, trial_id: int, status: str) -> None:
        run = self._runs.get(trial_id)
        if run is None:
            return
        self._refuse_if_owned_elsewhere(f"stop or pause trial {trial_id}")
        run.requested = status
        if run.pending is not None:
            # never started: cancelling it is all there is to do
            run.pending = None
            run.wait_reason = None
            self._mark_ended(trial_id)
            return
        was_running = not run.ended
        self._refresh(trial_id)
        if was_running:
            # what the trial printed before the decision still counts
            self._take_new_metrics(trial_id)
        if run.process is not None and not run.ended:
            run.process.terminate()

    def _pause_trial(self, trial_id: int, result: dict | None):
        self._request_end(trial_id, Status.paused)

    def _stop_trial(self, trial_id: int, result: dict | None):
        self._request_end(trial_id, Status.stopped)

    def _resume_trial(self, trial_id: int):
        run = self._runs[trial_id]
        # the previous process must be gone before a new one uses the same
        # checkpoint folder and log
        if run.process is not None and not run.ended:
            run.process.stop_and_wait()
            self._refresh(trial_id)
        run.reader.skip_to_end()

    def stop_all(self):
        """Stop all trials which are in progress, and wait until their processes
        are gone (at most the grace period plus a few seconds)."""
        self._adopt_orphans()
        self._refuse_if_owned_elsewhere("stop its trials")
        super().stop_all()
        self._end_all_processes()
        if self.delete_checkpoints:
            # trials may have written a checkpoint while stopping
            for trial_id in self.trial_ids:
                self.delete_checkpoint(trial_id)

    def _end_all_processes(self) -> None:
        live = [
            (trial_id, self._runs[trial_id].process)
            for trial_id in sorted(self._unfinished)
            if self._runs[trial_id].process is not None
            and not self._runs[trial_id].process.owned_elsewhere()
        ]
        for _, process in live:
            process.terminate()
        deadline = time.monotonic() + self.stop_grace_period + 5.0
        try:
            for trial_id, process in live:
                if not process.wait(max(0.0, deadline - time.monotonic())):
                    process.kill()
                    process.wait(5.0)
                self._refresh(trial_id)
        except KeyboardInterrupt:
            # a second Ctrl+C while waiting out the grace period: end them now
            for _, process in live:
                process.kill()
            for trial_id, process in live:
                process.wait(5.0)
                self._refresh(trial_id)
            raise

    # ------------------------------------------------------------------
    # status and results
    # ------------------------------------------------------------------
    def _refresh(self, trial_id: int) -> None:
        """Notice the end of the trial's process, once."""
        run = self._runs[trial_id]
        if run.ended or run.process is None or run.process.poll():
            return
        run.record = run.process.record()
        if run.record is None:
            # the guard died without its record (SIGKILLed from outside)
            leftovers = run.process.end_leftovers()
            if leftovers:
                logger.warning(
                    f"trial {trial_id}: its guard was killed; ended the processes it "
                    f"left behind: {leftovers}"
                )
        end = run.record.get("end_time") if run.record else None
        self._mark_ended(trial_id, datetime.fromtimestamp(end) if end else None)
        if run.requested is None:
            self._take_new_metrics(trial_id)
        elif run.requested == Status.stopped and self.delete_checkpoints:
            self.delete_checkpoint(trial_id)
        self._on_trial_process_end(trial_id)

    def _take_new_metrics(self, trial_id: int) -> None:
        run = self._runs[trial_id]
        new = run.reader.read_new()
        for metric in new:
            # TrialBackend sorts results by this field (syne-tune's Reporter adds
            # it); a line printed by hand lacks it, which must not end the tuning
            stamp = metric.get(ST_WORKER_TIMESTAMP)
            if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
                metric[ST_WORKER_TIMESTAMP] = time.time()
                if not run.warned_timestamp:
                    run.warned_timestamp = True
                    logger.warning(
                        f"trial {trial_id}: a metric has no numeric '{ST_WORKER_TIMESTAMP}' "
                        f"(printed without syne-tune's Reporter?); the time it was read is "
                        f"used. Report with syne_tune.Reporter or syne_tune_localx.trial.Reporter"
                    )
        run.metrics.extend(new)

    def _mark_ended(self, trial_id: int, end_time: datetime | None = None) -> None:
        run = self._runs[trial_id]
        run.ended = True
        run.end_time = end_time or datetime.now()
        self._unfinished.discard(trial_id)

    def _status(self, trial_id: int) -> str:
        run = self._runs[trial_id]
        if run.requested is not None:
            return run.requested
        if not run.ended:
            return Status.in_progress  # running, or waiting to start
        record = run.record
        if record is not None and record.get("exit_code") == 0 and not record.get(
            "stop_requested"
        ):
            return Status.completed
        return Status.failed

    def _begin_poll(self) -> None:
        """What every poll does first: settle a reload, let the mixins sample
        (GPU accounting), and start waiting trials that may start now."""
        self._adopt_orphans()
        self._on_poll()
        self._start_pending()

    def _all_trial_results(self, trial_ids: list[int]) -> list[TrialResult]:
        self._begin_poll()
        results = []
        for trial_id in trial_ids:
            run = self._runs[trial_id]
            self._refresh(trial_id)
            if run.requested is None and not run.ended:
                self._take_new_metrics(trial_id)
            results.append(
                self._trial_dict[trial_id].add_results(
                    metrics=run.metrics,
                    status=self._status(trial_id),
                    training_end_time=run.end_time or datetime.now(),
                )
            )
        return results

    def busy_trial_ids(self) -> list[tuple[int, str]]:
        """Returns list of ids for currently busy trials

        A trial is busy if its status is in_progress, or if it was asked to stop
        or pause and its process is still ending (reported as ``stopping``).

        :return: List of ``(trial_id, status)``
        """
        self._begin_poll()
        busy = []
        for trial_id in sorted(self._unfinished):
            run = self._runs[trial_id]
            self._refresh(trial_id)
            if run.ended:
                continue
            status = Status.in_progress if run.requested is None else Status.stopping
            if status in BUSY_STATUS:
                busy.append((trial_id, status))
        return busy

    # ------------------------------------------------------------------
    # pickling (Tuner.save / Tuner.load)
    # ------------------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_adopt_orphans_on_use"] = True
        return state

    def _refuse_if_owned_elsewhere(self, action: str) -> None:
        """A copy loaded (``Tuner.load``) while the tuner that started the
        trials still runs must not act on them, nor start trials with the same
        IDs into the same folders."""
        for trial_id in self._unfinished:
            process = self._runs[trial_id].process
            if process is not None and process.owned_elsewhere():
                raise LaunchError(
                    f"cannot {action}: this backend was loaded from a saved tuner while "
                    f"the tuner that runs its trials is still alive (pid "
                    f"{process.owner[0]}, trial {trial_id}). Stop that tuner first (or "
                    f"wait for it to end) before resuming; loading only to read results is fine"
                )

    def _adopt_orphans(self) -> None:
        """After a reload, end trial processes the previous tuner left behind
        before anything else happens, and settle their status: a trial whose
        exit was not seen by its guard is reported failed."""
        if not self._adopt_orphans_on_use:
            return
        self._adopt_orphans_on_use = False
        for trial_id, run in self._runs.items():
            if run.process is None or run.ended:
                continue
            if run.process.owned_elsewhere():
                logger.info(
                    f"trial {trial_id} belongs to a tuner that still runs (pid "
                    f"{run.process.owner[0]}); this copy leaves it alone"
                )
                continue
            if run.process.poll():
                logger.warning(
                    f"trial {trial_id} (pid {run.process.pid}) survived the previous "
                    f"tuner; ending it before new trials start"
                )
                run.process.stop_and_wait()
            self._refresh(trial_id)
            if run.requested is None and self._status(trial_id) != Status.completed:
                logger.warning(f"trial {trial_id} was running when the tuner ended; reported failed")
        _LIVE_BACKENDS.add(self)

    def __str__(self):
        return f"localx entry_point {Path(self.entry_point).name}"
