"""The ``syne-tune-localx`` console script, run as users run it.

Experiments run the installed console script in a subprocess on small
experiment files written next to a tiny training script (no syne-tune or
scikit-learn import in the trials, so each starts in a fraction of a second).
Error cases that stop before any trial starts call :func:`cli.main` in-process,
which is the same code without an interpreter start; one of them also goes
through the console script to check the exit status and the absence of a
traceback.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from syne_tune_localx import cli

TRAIN = textwrap.dedent(
    """
    import argparse, json, time
    from pathlib import Path
    from syne_tune_localx.trial import Reporter, read_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--name", type=str, default="loss")
    config = read_config(parser)
    checkpoint = Path(config["st_checkpoint_dir"]) / "state.json"
    state = json.loads(checkpoint.read_text()) if checkpoint.exists() else {"epoch": 0, "total": 0.0}
    report = Reporter()
    if state["epoch"] >= config["epochs"]:
        report(epoch=state["epoch"], **{config["name"]: state["total"]})
    for epoch in range(state["epoch"] + 1, config["epochs"] + 1):
        time.sleep(0.03)
        state = {"epoch": epoch, "total": state["total"] + (config["x"] - 0.3) ** 2 + 1.0 / epoch}
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text(json.dumps(state))
        report(epoch=epoch, **{config["name"]: state["total"] / epoch})
    """
)

BASE = """\
# a small experiment; every path is relative to this file
name: {name}
results_dir: results
backend:
  name: localx
  options:
    entry_point: train.py
    num_gpus_per_trial: 0
config_space:
  x: uniform(-1, 1)
  epochs: {epochs}
metric: loss
mode: min
n_workers: 2
tuner:
  sleep_time: 0.1
"""

RANDOM_SEARCH = BASE.format(name="toy-rs", epochs=3) + """\
scheduler: {name: RandomSearch, options: {random_seed: 1}}
stop: {max_num_trials_completed: 4}
"""

ASHA = BASE.format(name="toy-asha", epochs=9) + """\
scheduler:
  name: ASHA
  options: {time_attr: epoch, max_t: 9, grace_period: 1, reduction_factor: 3, random_seed: 2}
stop: {max_num_trials_started: 8}
"""

PBT = BASE.format(name="toy-pbt", epochs=6) + """\
scheduler:
  name: PopulationBasedTraining
  options: {time_attr: epoch, max_t: 6, population_size: 4, perturbation_interval: 2, random_seed: 3}
stop: {max_num_trials_started: 10}
"""

BEST_LINE = re.compile(r"^Best configuration \(trial (\d+), (\w+) (\S+)\): (\{.*\})$", re.MULTILINE)


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("syne-tune-localx")
    if script.exists():
        return [str(script)]
    found = shutil.which("syne-tune-localx")
    if found is None:
        pytest.skip("the syne-tune-localx console script is not installed (pip install -e .)")
    return [found]


def run_cli(*args, cwd, env=None, timeout=120) -> subprocess.CompletedProcess:
    environment = dict(os.environ)
    environment.update(env or {})
    return subprocess.run(
        console_script() + list(args),
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def project(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    return tmp_path


def write(folder: Path, text: str, name: str = "experiment.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def results_folder(stdout: str) -> Path:
    match = re.search(r"^  results    (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match.group(1))


def check_finished_experiment(done, folder_root: Path, name: str, metric="loss", mode="min", top=5):
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    folder = results_folder(done.stdout)
    # relative results_dir is taken from the experiment file's folder
    assert folder.parent == folder_root / "results" and folder.name.startswith(f"{name}-")
    for file in ("metadata.json", "results.csv.zip", "tuner.log"):
        assert (folder / file).is_file(), file
    assert (folder / "0" / "std.out").is_file()
    df = pd.read_csv(folder / "results.csv.zip")
    best_rows = df.groupby("trial_id")[metric].agg("min" if mode == "min" else "max")
    best_trial = best_rows.idxmin() if mode == "min" else best_rows.idxmax()
    # the printed best configuration is the best trial of syne-tune's own results
    match = BEST_LINE.search(done.stdout)
    assert match, done.stdout
    trial_id, printed_metric, value, config = match.groups()
    assert int(trial_id) == best_trial and printed_metric == metric
    assert float(value) == pytest.approx(best_rows[best_trial], rel=1e-3)
    config = json.loads(config)
    row = df[df["trial_id"] == best_trial].iloc[0]
    assert config["x"] == pytest.approx(row["config_x"])
    assert f"Best {min(top, df.trial_id.nunique())} of {df.trial_id.nunique()} trials by {metric}" in done.stdout
    # quiet when stdout is not a terminal: no progress line
    assert "\x1b[K" not in done.stdout
    return folder, df


# --------------------------------------------------------------------------
# experiments


@pytest.mark.slow
def test_random_search_experiment(project):
    write(project, RANDOM_SEARCH)
    done = run_cli("run", "experiment.yaml", cwd=project)
    folder, df = check_finished_experiment(done, project, "toy-rs")
    assert re.search(r"^Finished after [\d.]+s \(more than 4 trials completed\)", done.stdout, re.MULTILINE)
    assert df.groupby("trial_id").size().max() == 3
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["localx"]["experiment_file"] == str(project / "experiment.yaml")


@pytest.mark.slow
def test_asha_experiment_from_another_folder_with_overrides(project, tmp_path_factory):
    write(project, ASHA)
    elsewhere = tmp_path_factory.mktemp("cwd")
    done = run_cli(
        "run",
        str(project / "experiment.yaml"),
        "--set",
        "stop.max_num_trials_started=6",
        "--set",
        "scheduler.options.grace_period=2",
        cwd=elsewhere,
    )
    _, df = check_finished_experiment(done, project, "toy-asha")
    assert "scheduler  ASHA, loss (min), 2 workers" in done.stdout
    assert "stop       max_num_trials_started=6" in done.stdout
    # ASHA stopped some trials early: fewer than max_t reports
    reports = df.groupby("trial_id").size()
    assert reports.min() < 9 and df["epoch"].max() <= 9
    # the table shows the progress attribute at each trial's best result
    assert re.search(r"^rank\s+trial\s+loss\s+epoch\s+reports\s+x$", done.stdout, re.MULTILINE)


@pytest.mark.slow
def test_pbt_experiment_continues_from_checkpoints(project):
    write(project, PBT)
    done = run_cli("run", "experiment.yaml", "--top", "3", cwd=project)
    _, df = check_finished_experiment(done, project, "toy-pbt", top=3)
    assert "PopulationBasedTraining" in done.stdout
    # PBT started some trials from another trial's checkpoint: their first
    # report is past epoch 1
    first_epochs = df.sort_values("st_tuner_time").groupby("trial_id")["epoch"].first()
    assert (first_epochs > 1).any(), first_epochs
    assert "Best 3 of" in done.stdout


@pytest.mark.slow
def test_json_experiment_show_and_plot(project, tmp_path):
    import yaml

    document = yaml.safe_load(RANDOM_SEARCH)
    document["mode"] = "max"
    write(project, json.dumps(document, indent=2), "experiment.json")
    done = run_cli("run", "experiment.json", "--progress", "always", cwd=project)
    assert done.returncode == 0, done.stderr
    # forced progress: a line redrawn in place (erase-to-end-of-line codes; the
    # carriage returns read as newlines in text mode), with counts and the best metric
    assert done.stdout.count("\x1b[K") >= 2
    assert "trials: " in done.stdout and "best loss" in done.stdout
    folder = results_folder(done.stdout)
    table = done.stdout[re.search(r"^Best \d+ of", done.stdout, re.MULTILINE).start() :]

    shown = run_cli("show", str(folder), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Best ") and "(highest first)" in shown.stdout
    # `show` prints the table `run` printed
    assert shown.stdout.strip().splitlines()[:8] == table.strip().splitlines()[:8]

    pytest.importorskip("matplotlib")
    plot = tmp_path / "plots" / "loss.png"
    shown = run_cli("show", str(folder), "--plot", str(plot), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Plot saved to {plot}" in shown.stdout


@pytest.mark.slow
def test_packaged_demo_runs_without_a_file(tmp_path):
    pytest.importorskip("sklearn")
    done = run_cli(
        "run",
        "--set",
        # a few results, however long scikit-learn takes to import on a busy machine
        "stop={max_num_evaluations: 3, max_wallclock_time: 120}",
        "--set",
        "config_space.epoch_seconds=0",
        cwd=tmp_path,
        env={"SYNETUNE_FOLDER": str(tmp_path / "st")},
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the packaged demo" in done.stdout
    folder = results_folder(done.stdout)
    assert folder.parent == tmp_path / "st" and folder.name.startswith("digits-demo-")
    match = BEST_LINE.search(done.stdout)
    assert match and match.group(2) == "accuracy" and 0.5 < float(match.group(3)) <= 1.0
    assert {"alpha", "eta0", "loss", "learning_rate"} <= set(json.loads(match.group(4)))


def test_backends_lists_names_and_sources(tmp_path):
    done = run_cli("backends", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^localx\s+syne-tune-localx \S+ \(syne_tune_localx.backend:LocalXBackend\)$", done.stdout, re.MULTILINE)
    assert re.search(r"^local\s+built-in \(syne_tune.backend.local_backend:LocalBackend\)$", done.stdout, re.MULTILINE)


def test_backends_name_lists_its_options(capsys):
    assert cli.main(["backends", "localx"]) == 0
    out = capsys.readouterr().out
    assert "entry_point  (required)" in out and "stop_grace_period  (default 10.0)" in out


# --------------------------------------------------------------------------
# errors


def run_in_process(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def test_user_error_exit_status_and_no_traceback(project):
    write(project, RANDOM_SEARCH.replace("name: localx", "name: localz"))
    done = run_cli("run", "experiment.yaml", cwd=project)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    message = " ".join(done.stderr.split())
    assert message.startswith("error: ") and "No backend is registered under the name 'localz'" in message
    assert "Available: 'local', 'localx', 'python'" in message
    assert not (project / "results").exists()  # nothing started


def test_yaml_error_has_line_number(project, capsys):
    write(project, RANDOM_SEARCH.replace("  x: uniform(-1, 1)", "  x: [uniform(-1, 1)"))
    code, _, err = run_in_process(capsys, "run", str(project / "experiment.yaml"))
    assert code == 2 and "Invalid YAML in" in err and ", line 11, column " in err and "The line reads: 'epochs: 3'" in err


def test_unknown_scheduler_lists_available(project, capsys):
    write(project, RANDOM_SEARCH.replace("name: RandomSearch", "name: Hyperband"))
    code, _, err = run_in_process(capsys, "run", str(project / "experiment.yaml"))
    assert code == 2 and "line 17 (key scheduler.name): unknown scheduler 'Hyperband'" in err
    for name in ("'ASHA'", "'BOHB'", "'RandomSearch'", "'TPE'", "'REA'", "'PopulationBasedTraining'"):
        assert name in err


def test_unknown_domain_lists_available(project, capsys):
    write(project, RANDOM_SEARCH.replace("uniform(-1, 1)", "normal(0, 1)"))
    code, _, err = run_in_process(capsys, "run", str(project / "experiment.yaml"))
    assert code == 2 and "line 10 (key config_space.x): unknown domain 'normal'" in err
    assert "'loguniform'" in err and "'randint'" in err and "'choice'" in err


def test_options_not_accepted_list_the_accepted_ones(project, capsys):
    write(project, RANDOM_SEARCH)
    code, _, err = run_in_process(
        capsys, "run", str(project / "experiment.yaml"), "--set", "backend.options.gpus=1"
    )
    assert code == 2 and "backend 'localx'" in err and "takes no option 'gpus'" in err
    assert "Accepted options: 'binary', " in err and "'num_gpus_per_trial'" in err
    code, _, err = run_in_process(
        capsys, "run", str(project / "experiment.yaml"), "--set", "scheduler.options.seed=1"
    )
    assert code == 2 and "RandomSearch takes no option 'seed'" in err
    assert "Accepted options: 'points_to_evaluate', 'random_seed'" in err


def test_check_validates_without_running(project, capsys):
    write(project, ASHA)
    code, out, err = run_in_process(capsys, "run", str(project / "experiment.yaml"), "--check")
    assert code == 0, err
    assert "The experiment is valid (--check: no trial was started)." in out
    assert not (project / "results").exists()


@pytest.mark.slow
def test_metric_never_reported_is_said_plainly(project, capsys):
    write(project, RANDOM_SEARCH)
    code, _, err = run_in_process(
        capsys, "run", str(project / "experiment.yaml"), "--set", "config_space.name=val_loss"
    )
    assert code == 1
    assert "reported 'epoch', 'val_loss' but not 'loss', the metric the experiment optimises" in err
    assert "--set metric=val_loss" in err and "std.out" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_failing_trials_show_their_stderr(project, capsys):
    (project / "crash.py").write_text("import sys\nprint('cannot open data.csv', file=sys.stderr)\nsys.exit(3)\n")
    write(project, RANDOM_SEARCH)
    code, _, err = run_in_process(
        capsys, "run", str(project / "experiment.yaml"), "--set", "backend.options.entry_point=crash.py"
    )
    assert code == 1
    assert "trials failed" in err and "more than the 1 the experiment tolerates" in err
    assert "cannot open data.csv" in err and "--set tuner.max_failures=5" in err


def test_plot_without_matplotlib_says_how_to_install(project, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    write(project, RANDOM_SEARCH)
    code, _, err = run_in_process(capsys, "run", str(project / "experiment.yaml"), "--plot", "x.png")
    assert code == 2 and "--plot needs matplotlib" in err and "syne-tune-localx[plot]" in err
    assert not (project / "results").exists()


def test_demo_without_scikit_learn_says_how_to_install(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path))
    code, _, err = run_in_process(capsys, "run")
    assert code == 2 and "syne-tune-localx[examples]" in err


def test_show_on_a_folder_that_is_not_a_results_folder(tmp_path, capsys):
    code, _, err = run_in_process(capsys, "show", str(tmp_path))
    assert code == 2 and "is not the results folder of a syne-tune experiment" in err


def test_show_on_a_damaged_results_file_says_so(tmp_path, capsys):
    # it once said "holds no results yet" about a file it could not read
    folder = tmp_path / "exp-2026"
    folder.mkdir()
    (folder / "metadata.json").write_text('{"metric_names": ["loss"], "metric_mode": "min"}')
    (folder / "results.csv.zip").write_bytes(os.urandom(4096))
    code, _, err = run_in_process(capsys, "show", str(folder))
    assert code == 2 and "cannot be read" in err and "damaged" in err, err


# --------------------------------------------------------------------------
# mistakes --check finds that used to show only once trials ran


def test_config_values_the_command_line_cannot_carry_are_found_by_check(project, capsys):
    write(project, RANDOM_SEARCH)
    path = str(project / "experiment.yaml")
    code, _, err = run_in_process(capsys, "run", path, "--check", "--set", 'config_space={"a b": "uniform(0, 1)"}')
    assert code == 2 and "config_space key 'a b' cannot be a command-line flag" in err, err
    assert "backend.options.pass_args_as_json: true" in err
    code, _, err = run_in_process(capsys, "run", path, "--check", "--set", "config_space.g=[1, 2]")
    assert code == 2, err
    assert "config_space.g is a list, which the command line cannot carry; set backend.options.pass_args_as_json: true" in err
    assert err.startswith("error: --set config_space.g=[1, 2] (key config_space.g): ")
    # the categories of a choice are checked, not one sample
    code, _, err = run_in_process(capsys, "run", path, "--check", "--set", "config_space.g=choice([[1], [2, 3]])")
    assert code == 2 and "(key config_space.g): the category [1] is a list, which the command line cannot carry" in err, err
    # JSON mode carries both
    code, out, err = run_in_process(
        capsys, "run", path, "--check", "--set", "config_space.g=choice([[1], [2, 3]])",
        "--set", "config_space.h={a: 1}", "--set", "backend.options.pass_args_as_json=true",
    )
    assert code == 0, err
    assert not (project / "results").exists()


def test_tuner_options_of_the_wrong_type_are_named(project, capsys):
    write(project, RANDOM_SEARCH)
    path = str(project / "experiment.yaml")
    code, _, err = run_in_process(capsys, "run", path, "--set", "tuner.max_failures=abc")
    assert code == 2 and "(key tuner.max_failures): max_failures must be a whole number >= 0, got 'abc'" in err, err
    code, _, err = run_in_process(capsys, "run", path, "--check", "--set", "tuner.max_failures=-1")
    assert code == 2 and "max_failures must be a whole number >= 0, got -1" in err, err
    code, _, err = run_in_process(capsys, "run", path, "--check", "--set", "tuner.print_update_interval=fast")
    assert code == 2 and "(key tuner.print_update_interval): print_update_interval must be seconds" in err, err
    code, _, err = run_in_process(capsys, "run", path, "--check", "--set", "tuner.results_update_interval=[1]")
    assert code == 2 and "results_update_interval must be seconds" in err, err
    code, _, err = run_in_process(capsys, "run", path, "--check", "--set", "tuner.save_tuner=no thanks")
    assert code == 2 and "(key tuner.save_tuner): save_tuner must be true or false, got 'no thanks'" in err, err
    assert not (project / "results").exists()


def test_results_dir_that_cannot_be_created_is_reported_before_anything_starts(project, capsys):
    write(project, RANDOM_SEARCH)
    (project / "a-file").write_text("x")
    path = str(project / "experiment.yaml")
    for extra in (["--check"], []):
        code, _, err = run_in_process(capsys, "run", path, "--set", "results_dir=a-file/sub", *extra)
        assert code == 2, err
        assert "(key results_dir)" in err and f"cannot create the results folder {project / 'a-file' / 'sub'}" in err
        assert f"{project / 'a-file'} is a file" in err and "Traceback" not in err


def test_several_metrics_with_a_single_objective_scheduler(project, capsys):
    write(project, RANDOM_SEARCH)
    code, _, err = run_in_process(capsys, "run", str(project / "experiment.yaml"), "--check", "--set", "metric=[loss, acc]")
    assert code == 2, err
    assert "(key metric): RandomSearch optimises one metric, got ['loss', 'acc']" in err
    assert "object at 0x" not in err and "scheduler.options" not in err


def test_domain_split_by_a_flow_mapping_suggests_quoting(project, capsys):
    write(project, RANDOM_SEARCH)
    code, _, err = run_in_process(
        capsys, "run", str(project / "experiment.yaml"), "--check", "--set", "config_space={f: uniform(0, 1)}"
    )
    assert code == 2, err
    assert "YAML splits a flow mapping" in err and "f: \"uniform(0, 1)\"" in err and "block style" in err


def test_header_lists_tuned_hyperparameters_and_a_normalised_entry_point(project, capsys):
    (project / "sub").mkdir()
    write(project, RANDOM_SEARCH.replace("entry_point: train.py", "entry_point: sub/../train.py"))
    code, out, err = run_in_process(capsys, "run", str(project / "experiment.yaml"), "--check")
    assert code == 0, err
    assert re.search(r"^  tuning     x$", out, re.MULTILINE), out
    assert f"(entry point {project / 'train.py'})" in out


# --------------------------------------------------------------------------
# interruptions: Ctrl+C and SIGTERM

SLOW_TRAIN = textwrap.dedent(
    """
    import argparse, signal, time
    from syne_tune_localx.trial import Reporter, read_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float)
    parser.add_argument("--ignore_term", type=int, default=0)
    config = read_config(parser)
    if config["ignore_term"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    report = Reporter()
    for epoch in range(1, 100000):
        report(epoch=epoch, loss=config["x"] + 1.0 / epoch)
        time.sleep(0.05)
    """
)

SLOW = """\
name: toy-slow
results_dir: results
backend:
  name: localx
  options: {entry_point: slow.py, num_gpus_per_trial: 0, stop_grace_period: 30}
config_space:
  x: uniform(0, 1)
  ignore_term: 0
metric: loss
n_workers: 2
stop: {max_wallclock_time: 600}
tuner: {sleep_time: 0.1}
"""


def script_processes(script: Path) -> list[int]:
    """Pids of processes whose command line names ``script``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(script).encode() in cmdline:
            found.append(int(entry.name))
    return found


class _Running:
    """The console script in the background, its stdout collected line by line."""

    def __init__(self, project: Path, *args):
        import threading

        self.process = subprocess.Popen(
            console_script() + ["run", "experiment.yaml", *args],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, predicate, timeout: float, what: str):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            assert self.process.poll() is None, "".join(self.lines) + self.process.stderr.read()
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {''.join(self.lines)}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:  # a failed test: the trials end with the tuner
            self.process.kill()
            self.process.wait(30)

    def finish(self, timeout: float) -> tuple[int, str, str]:
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self._reader.join(10)
        return code, "".join(self.lines), self.process.stderr.read()


def _wait_until_trials_report(running: _Running, project: Path):
    def reporting():
        folders = list((project / "results").glob("toy-slow-*/[01]/std.out"))
        return len(folders) == 2 and all(f.read_text().count("[tune-metric]") >= 3 for f in folders)

    running.wait_for(reporting, 60, "two trials reporting")
    import time

    time.sleep(0.5)  # the tuner has seen results


@pytest.mark.slow
def test_sigterm_stops_trials_gracefully_saves_and_prints_results(project):
    import time

    (project / "slow.py").write_text(SLOW_TRAIN)
    write(project, SLOW)
    with _Running(project) as running:
        _wait_until_trials_report(running, project)
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        code, out, err = running.finish(timeout=60)
    assert code == 128 + signal.SIGTERM, out + err
    assert time.monotonic() - started < 25  # the trials ended on SIGTERM, no grace period used up
    assert "Traceback" not in err
    assert "Terminated (SIGTERM): stopping 2 running trials (grace period 30 s; send SIGTERM again" in out, out
    assert re.search(r"^Terminated after [\d.]+s: \d+ trials", out, re.MULTILINE), out
    assert BEST_LINE.search(out), out
    folder = results_folder(out)
    for name in ("results.csv.zip", "tuner.dill", "metadata.json"):
        assert (folder / name).is_file(), name
    assert not script_processes(project / "slow.py")


@pytest.mark.slow
def test_ctrl_c_says_what_it_waits_for_and_a_second_one_kills_the_trials(project):
    import time

    (project / "slow.py").write_text(SLOW_TRAIN)
    write(project, SLOW)
    # trials that ignore SIGTERM use up their 30 s grace period unless killed
    with _Running(project, "--set", "config_space.ignore_term=1") as running:
        _wait_until_trials_report(running, project)
        running.process.send_signal(signal.SIGINT)
        message = "Interrupted: stopping 2 running trials (grace period 30 s; press Ctrl+C again to kill them now)"
        running.wait_for(lambda: message in "".join(running.lines), 30, "the stopping message")
        time.sleep(1.0)
        assert running.process.poll() is None  # waiting for the trials
        assert script_processes(project / "slow.py")
        started = time.monotonic()
        running.process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        running.process.send_signal(signal.SIGINT)  # a third one changes nothing
        code, out, err = running.finish(timeout=60)
    # 130; or killed by the third SIGINT if that came after Python began to shut
    # down (it restores the default action then), which a shell reports as 130 too
    assert code in (130, -signal.SIGINT), out + err
    assert time.monotonic() - started < 15
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert re.search(r"^Interrupted after [\d.]+s: \d+ trials .* 2 trials were killed without waiting", out, re.MULTILINE), out
    folder = results_folder(out)
    for name in ("results.csv.zip", "tuner.dill"):
        assert (folder / name).is_file(), name
    assert not script_processes(project / "slow.py")
