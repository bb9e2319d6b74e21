"""The ``syne-tune-localx`` command.

* ``syne-tune-localx run [EXPERIMENT.yaml] [--set KEY=VALUE ...] [--plot FILE.png]``
  runs the experiment a YAML or JSON file describes (without a file: the
  packaged digits demo), shows its progress, and prints the best trials.
* ``syne-tune-localx show RESULTS_FOLDER`` prints the same table for a
  finished experiment.
* ``syne-tune-localx backends [NAME]`` lists the registered backends, or the
  options of one.

Exit status: 0 on success; 1 when the experiment ran but failed (trials
failed, the metric was never reported); 2 for a mistake in the command, the
experiment file or the overrides (a message, no traceback); 130 when
interrupted by Ctrl+C, 143 by SIGTERM (128 + the signal).

While the tuner runs, Ctrl+C and SIGTERM (``timeout``, Slurm, ``docker stop``)
stop it the same way: the running trials are stopped gracefully, the results
saved and printed; a second one kills the trials at once
(:class:`~syne_tune_localx.progress.StopOnSignal`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import textwrap
import warnings
from pathlib import Path

from syne_tune_localx.errors import LocalXError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
LOG_FILE_NAME = "tuner.log"


class _Failure(Exception):
    """The experiment ran but did not succeed; the message says why."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syne-tune-localx",
        description="Run syne-tune experiments described in a YAML or JSON file.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser(
        "run",
        help="run an experiment file (without one: the packaged digits demo)",
        description=(
            "Run the experiment EXPERIMENT (YAML or JSON) describes; without a file, "
            "the packaged digits demo. Progress is shown while it runs when the "
            "output is a terminal; the best trials are printed at the end."
        ),
    )
    run.add_argument("experiment", nargs="?", help="experiment file (.yaml, .yml or .json)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one key of the file, e.g. --set n_workers=4 --set "
        "stop.max_wallclock_time=30 (the value is read as YAML); repeatable",
    )
    run.add_argument("--plot", metavar="FILE.png", help="save a plot of the metric over time")
    run.add_argument("--top", type=int, default=5, metavar="N", help="rows of the results table (5)")
    run.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress line: on a terminal only (auto), always, or never",
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help=f"show syne-tune's own output and logs on the terminal (otherwise they go to "
        f"{LOG_FILE_NAME} in the results folder)",
    )
    run.add_argument(
        "--check",
        action="store_true",
        help="check the experiment (file, backend, scheduler) and exit without running trials",
    )

    show = sub.add_parser(
        "show",
        help="print the best trials of a finished experiment",
        description="Print the best trials of the experiment in RESULTS_FOLDER.",
    )
    show.add_argument("results_folder", help="the folder `run` printed (holds metadata.json)")
    show.add_argument("--top", type=int, default=5, metavar="N", help="rows of the table (5)")
    show.add_argument("--metric", help="rank by this metric instead of the experiment's")
    show.add_argument("--plot", metavar="FILE.png", help="save a plot of the metric over time")

    backends = sub.add_parser(
        "backends",
        help="list the registered trial backends",
        description="List the backends an experiment file can name, and where each comes from.",
    )
    backends.add_argument("name", nargs="?", help="show the options of this backend")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script.

    :param argv: Arguments (default ``sys.argv[1:]``)
    :return: Exit status
    """
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "show":
            return _show(args)
        return _backends(args)
    except LocalXError as err:
        _error(str(err))
        return EXIT_USAGE
    except _Failure as err:
        _error(str(err))
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _error(message: str) -> None:
    width = max(60, min(100, _terminal_width()))
    print(textwrap.fill(f"error: {message}", width=width, break_long_words=False,
                        break_on_hyphens=False), file=sys.stderr)


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns


# --------------------------------------------------------------------------
# run


def _run(args) -> int:
    from syne_tune_localx.demo import DEMO_EXPERIMENT, DEMO_REQUIREMENTS
    from syne_tune_localx.experiment import load_experiment_file
    from syne_tune_localx.results import check_plotting

    demo = args.experiment is None
    path = DEMO_EXPERIMENT if demo else Path(args.experiment)
    experiment = load_experiment_file(path, overrides=args.overrides)
    if args.plot:
        check_plotting()
    if demo:
        _check_demo_requirements(DEMO_REQUIREMENTS)
    if args.top < 1:
        raise _usage(f"--top must be at least 1, got {args.top}.")

    experiment.check_results_dir()
    with _results_root(experiment.results_dir), _captured_logging() as early:
        backend = experiment.make_backend()
        experiment.check_config_values(backend)
        scheduler = experiment.make_scheduler()
        stop = experiment.make_stop_criterion()
        if args.check:
            for record in early.records:
                if record.levelno >= logging.WARNING:
                    print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)
            _print_header(experiment, backend, None, demo)
            print("The experiment is valid (--check: no trial was started).")
            return EXIT_OK
        return _tune(args, experiment, backend, scheduler, stop, demo, early.records)


def _usage(message: str) -> LocalXError:
    from syne_tune_localx.errors import ConfigurationError

    return ConfigurationError(message)


def _check_demo_requirements(modules) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise _usage(
            "The packaged demo trains scikit-learn models, and scikit-learn is not "
            "installed. Install it with pip install 'syne-tune-localx[examples]' "
            "(or pip install scikit-learn), or run an experiment file of your own."
        )


@contextlib.contextmanager
def _results_root(folder: Path | None):
    """syne-tune puts results below ``$SYNETUNE_FOLDER``; point it at the
    experiment's ``results_dir`` while the experiment is built and runs."""
    if folder is None:
        yield
        return
    before = os.environ.get("SYNETUNE_FOLDER")
    os.environ["SYNETUNE_FOLDER"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SYNETUNE_FOLDER", None)
        else:
            os.environ["SYNETUNE_FOLDER"] = before


class _Buffer(logging.Handler):
    """Keeps log records until the results folder (and its log) exists."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def _captured_logging():
    """Route all logging into a buffer while the experiment is built.

    Importing ``syne_tune.report`` calls ``logging.basicConfig()``, whose stderr
    handler would print syne-tune's construction-time chatter; it is put
    back afterwards.
    """
    root = logging.getLogger()
    old_level, old_handlers = root.level, list(root.handlers)
    buffer = _Buffer()
    for handler in old_handlers:
        root.removeHandler(handler)
    root.addHandler(buffer)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(buffer)
        for handler in old_handlers:
            root.addHandler(handler)
        root.setLevel(old_level)


def _tune(args, experiment, backend, scheduler, stop, demo: bool, early_records=()) -> int:
    from syne_tune import Tuner
    from syne_tune.results_callback import StoreResultsCallback

    from syne_tune_localx.progress import (
        MetricCheck,
        ProgressCallback,
        StopOnSignal,
        counts_text,
        status_counts,
        stop_reason,
    )
    from syne_tune_localx.results import METADATA_KEY

    terminal = sys.stdout
    live = {"auto": terminal.isatty(), "always": True, "never": False}[args.progress]
    live = live and not args.verbose
    origin = str(experiment.path) if experiment.path else "the experiment"
    check = MetricCheck(experiment.metric_names, getattr(scheduler, "time_attr", None), origin)
    progress = ProgressCallback(
        metric=experiment.metric_names[0],
        mode=experiment.mode,
        stop=experiment.stop,
        stream=terminal,
        live=live,
    )
    metadata = {
        METADATA_KEY: {
            "experiment_file": str(experiment.path) if experiment.path else None,
            "metrics": experiment.metric_names,
            "mode": experiment.mode,
            "time_attr": getattr(scheduler, "time_attr", None),
            "experiment": experiment.document,
        }
    }
    signals = StopOnSignal(stream=terminal)
    tuner_options = dict(experiment.tuner_options)
    tuner = Tuner(
        trial_backend=backend,
        scheduler=scheduler,
        stop_criterion=stop,
        n_workers=experiment.n_workers,
        tuner_name=experiment.name,
        callbacks=[StoreResultsCallback(), check, progress, signals],
        metadata=metadata,
        output_logger=None if args.verbose else _quiet_logger(),
        **tuner_options,
    )
    folder = Path(tuner.tuner_path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _usage(
            f"Cannot create the results folder {folder} ({err.strerror or err}). Set "
            "results_dir (or SYNETUNE_FOLDER) to a folder you can write to."
        ) from err
    _print_header(experiment, backend, folder, demo)
    max_failures = tuner.max_failures

    interrupted = False
    error = None
    with _tuner_output(folder / LOG_FILE_NAME, args.verbose, early_records):
        try:
            with signals.installed():
                tuner.run()
        except KeyboardInterrupt:
            interrupted = True
        except Exception as err:  # noqa: BLE001 -- explained below, from what the callbacks saw
            error = err
    progress.finish()
    # a signal the tuner saw only once it was ending still counts
    interrupted = interrupted or signals.signum is not None
    signum = signals.signum or signal.SIGINT

    status = tuner.tuning_status
    if check.error is not None:
        raise _Failure(
            f"{check.error} Results so far are in {folder}."
        )
    if error is not None and status is not None and status.num_trials_failed > max_failures:
        raise _Failure(_failed_trials_message(tuner, max_failures))
    if error is not None:
        raise _Failure(
            f"Tuning stopped with {type(error).__name__}: {error}. The tuner's log is "
            f"{folder / LOG_FILE_NAME}; the trials' output is in their folders under {folder}."
        ) from error

    if status is not None:
        reason = stop_reason(experiment.stop, status, max_failures)
        words = "Finished"
        if interrupted:
            words = "Interrupted" if signum == signal.SIGINT else "Terminated"
        because = f" ({reason})" if reason and not interrupted else ""
        counts = progress.final_counts or status_counts(status)
        cut = "cut off by the interruption" if interrupted else "cut off at the end"
        killed = (
            f" {signals.killed} trial{'s were' if signals.killed != 1 else ' was'} killed "
            "without waiting for the grace period."
            if signals.killed
            else ""
        )
        if signals.count > 1 and terminal.isatty():
            print("\r", end="")  # over the ^C the terminal echoed
        print(
            f"{words} after {status.wallclock_time:.1f}s{because}: "
            f"{status.num_trials_started} trials ({counts_text(counts, cut)}), "
            f"{status.overall_metric_statistics.count} results.{killed}"
        )
    code = _print_results(folder, args.top, args.plot, missing_ok=interrupted)
    if interrupted:
        return 128 + signum
    return code


def _quiet_logger():
    from syne_tune.tuner_logger import TunerLogger

    # plain text for the log file: no colour codes, no emoji
    return TunerLogger(use_colors=False, use_emojis=False)


@contextlib.contextmanager
def _tuner_output(log_path: Path, verbose: bool, early_records=()):
    """Send syne-tune's prints and all logging to the results folder's log
    (warnings also to stderr), or everything to the terminal with ``verbose``.
    ``early_records`` (logged while the experiment was built) go to the log."""
    root = logging.getLogger()
    old_level = root.level
    old_handlers = list(root.handlers)
    for handler in old_handlers:
        root.removeHandler(handler)
    handlers = []
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.INFO)
        handlers.append(handler)
    else:
        file_handler = logging.FileHandler(log_path)
        file_handler.setLevel(logging.INFO)
        handlers.append(file_handler)
        stderr_handler = logging.StreamHandler(sys.stderr)
        stderr_handler.setLevel(logging.WARNING)
        stderr_handler.setFormatter(logging.Formatter("\n%(levelname)s: %(message)s"))
        handlers.append(stderr_handler)
    handlers[0].setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    for record in early_records:
        handlers[0].handle(record)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        if verbose:
            yield
        else:
            with open(log_path, "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
                yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        for handler in old_handlers:
            root.addHandler(handler)
        root.setLevel(old_level)


def _failed_trials_message(tuner, max_failures: int) -> str:
    from syne_tune.backend.trial_status import Status

    status = tuner.tuning_status
    failed = [t for t, s in status.last_trial_status_seen.items() if s == Status.failed]
    first = failed[0] if failed else None
    detail = ""
    if first is not None:
        try:
            tail = [line.rstrip() for line in tuner.trial_backend.stderr(first) if line.strip()][-3:]
        except Exception:  # noqa: BLE001 -- a backend without local logs
            tail = []
        try:
            where = f" ({tuner.trial_backend.trial_path(first)}/std.err)"
        except Exception:  # noqa: BLE001
            where = ""
        if tail:
            detail = f" The end of trial {first}'s stderr{where}: " + " | ".join(tail).rstrip(".") + "."
        else:
            detail = f" Trial {first} wrote nothing to stderr{where}."
    return (
        f"{len(failed)} trials failed (trial {', '.join(map(str, failed))}), more than the "
        f"{max_failures} the experiment tolerates, so tuning stopped.{detail} Fix the "
        "training script, or raise tuner.max_failures (e.g. --set tuner.max_failures=5) "
        "if some configurations are expected to fail."
    )


def _print_header(experiment, backend, folder: Path | None, demo: bool) -> None:
    source = str(experiment.path) if experiment.path else "a dictionary"
    if demo:
        source = f"the packaged demo, {source}"
    entry = getattr(backend, "entry_point", None)
    stop = ", ".join(f"{k}={v}" for k, v in experiment.stop.items() if v is not None)
    scheduler = experiment.scheduler_class.__name__
    lines = [
        f"Experiment {experiment.name}: {source}",
        f"  backend    {experiment.backend_name}" + (f" (entry point {entry})" if entry else ""),
        (
            f"  scheduler  {scheduler}, {', '.join(experiment.metric_names)} ({experiment.mode}), "
            f"{experiment.n_workers} worker{'s' if experiment.n_workers != 1 else ''}"
        ),
        f"  tuning     {', '.join(experiment.tuned_names)}",
        f"  stop       {stop}",
    ]
    if folder is not None:
        lines.append(f"  results    {folder}")
    print("\n".join(lines), flush=True)


def _print_results(folder: Path, top: int, plot: str | None, missing_ok: bool = False) -> int:
    from syne_tune_localx.errors import ConfigurationError
    from syne_tune_localx.results import (
        best_configuration_line,
        best_trials_table,
        load_results,
        save_plot,
    )

    try:
        results = load_results(folder)
    except ConfigurationError as err:
        if missing_ok:
            print(f"No results to show: {err}")
            return EXIT_OK
        raise _Failure(str(err)) from err
    print()
    print(best_trials_table(results, top=top))
    print()
    print(best_configuration_line(results))
    if plot:
        written = save_plot(results, plot)
        print(f"Plot saved to {written}")
    print(f"Results: {folder}  (show again: syne-tune-localx show {folder})")
    return EXIT_OK if results.best() is not None else EXIT_FAILED


# --------------------------------------------------------------------------
# show, backends


def _show(args) -> int:
    from syne_tune_localx.results import (
        best_configuration_line,
        best_trials_table,
        check_plotting,
        load_results,
        save_plot,
    )

    if args.plot:
        check_plotting()
    if args.top < 1:
        raise _usage(f"--top must be at least 1, got {args.top}.")
    results = load_results(args.results_folder, metric=args.metric)
    print(best_trials_table(results, top=args.top))
    print()
    print(best_configuration_line(results))
    if args.plot:
        print(f"Plot saved to {save_plot(results, args.plot)}")
    return EXIT_OK


def _backends(args) -> int:
    from syne_tune_localx.registry import (
        available_backends,
        backend_options,
        load_backend_class,
    )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listed = available_backends()
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if args.name is not None:
        backend_class = load_backend_class(args.name)
        options = backend_options(backend_class) or {}
        print(f"{args.name}: {backend_class.__module__}.{backend_class.__qualname__}")
        print(f"  from {listed.get(args.name, 'the registry')}")
        print("  options (backend.options in an experiment file):")
        for name, param in options.items():
            default = "required" if param.default is param.empty else f"default {param.default!r}"
            print(f"    {name}  ({default})")
        return EXIT_OK
    width = max(len(n) for n in listed) if listed else 4
    print(f"{'NAME'.ljust(width)}  SOURCE")
    for name, source in listed.items():
        print(f"{name.ljust(width)}  {source}")
    print(
        "\nSelect one in an experiment file with `backend: {name: NAME, options: {...}}`; "
        "`syne-tune-localx backends NAME` lists its options."
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
