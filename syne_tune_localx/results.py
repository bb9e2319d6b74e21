"""Reading a finished experiment's results folder: the best-trials table and the plot.

The folder is the one a :class:`~syne_tune.Tuner` writes (``metadata.json``,
``results.csv.zip``); it is read with syne-tune's own
:func:`syne_tune.experiments.load_experiment`, so any syne-tune experiment can
be shown, whether or not ``syne-tune-localx`` ran it.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syne_tune_localx.errors import ConfigurationError

CONFIG_PREFIX = "config_"
TIME_COLUMN = "st_tuner_time"
METADATA_KEY = "localx"
"""Key of the Tuner metadata that ``syne-tune-localx run`` adds (experiment
file, metric, mode, ``time_attr``, the resolved experiment)."""
PLOT_EXTRA_HINT = (
    "pip install 'syne-tune-localx[plot]' (or pip install matplotlib)"
)


@dataclass
class Results:
    """A results folder, loaded.

    :param path: The folder
    :param name: The tuner name
    :param frame: Every reported result, one row each (``trial_id``, metrics,
        ``config_<key>`` columns, ``st_tuner_time``)
    :param metric: The metric ranked by
    :param mode: ``"min"`` or ``"max"``
    :param time_attr: The progress attribute, if known
    :param metadata: ``metadata.json`` as read
    """

    path: Path
    name: str
    frame: Any
    metric: str
    mode: str
    time_attr: str | None
    metadata: dict

    @property
    def config_keys(self) -> list[str]:
        return [c[len(CONFIG_PREFIX):] for c in self.frame.columns if c.startswith(CONFIG_PREFIX)]

    def per_trial_best(self):
        """One row per trial: the row of its best result, best trial first."""
        df = self.frame.dropna(subset=[self.metric])
        if df.empty:
            return df
        pick = df.groupby("trial_id")[self.metric]
        index = pick.idxmin() if self.mode == "min" else pick.idxmax()
        best = df.loc[index.values].copy()
        best["reports"] = self.frame.groupby("trial_id").size().reindex(best["trial_id"]).values
        return best.sort_values(
            [self.metric, "trial_id"], ascending=[self.mode == "min", True]
        ).reset_index(drop=True)

    def best(self) -> tuple[int, float, dict] | None:
        """``(trial_id, metric value, full configuration)`` of the best trial."""
        table = self.per_trial_best()
        if table.empty:
            return None
        row = table.iloc[0]
        config = {key: _plain(row[CONFIG_PREFIX + key]) for key in self.config_keys}
        return int(row["trial_id"]), float(row[self.metric]), config


def load_results(folder: str | Path, metric: str | None = None) -> Results:
    """Load a results folder with syne-tune's ``load_experiment``.

    :param folder: The tuner's results folder (holding ``metadata.json``)
    :param metric: Rank by this metric instead of the experiment's first one
    :return: The results
    :raises ConfigurationError: Not a results folder, no results yet, or an
        unknown metric
    """
    from syne_tune.experiments import load_experiment

    path = Path(folder).expanduser().absolute()
    if not (path / "metadata.json").is_file():
        hint = ""
        if path.is_dir():
            inner = sorted(p.parent.name for p in path.glob("*/metadata.json"))
            if inner:
                hint = f" It holds the experiments {', '.join(inner[-5:])}; pass one of them."
        raise ConfigurationError(
            f"{path} is not the results folder of a syne-tune experiment (it has no "
            f"metadata.json).{hint} `syne-tune-localx run` prints the folder it writes to."
        )
    experiment = load_experiment(tuner_name=path.name, local_path=str(path.parent))
    metadata = experiment.metadata or {}
    ours = metadata.get(METADATA_KEY) or {}
    names = ours.get("metrics") or metadata.get("metric_names") or []
    mode = ours.get("mode") or metadata.get("metric_mode") or "min"
    if isinstance(mode, list):
        mode = mode[0]
    frame = experiment.results
    results_file = path / "results.csv.zip"
    if (frame is None or frame.empty) and results_file.is_file() and results_file.stat().st_size:
        try:
            import pandas as pd

            pd.read_csv(results_file)
        except Exception as err:  # noqa: BLE001 - any reason it cannot be read
            raise ConfigurationError(
                f"{results_file} cannot be read ({type(err).__name__}: {err}); the file is "
                "damaged. The trials' std.out in that folder still hold what they reported."
            ) from err
    if frame is None or frame.empty:
        raise ConfigurationError(
            f"{path} holds no results yet (no results.csv.zip, or it is empty): no trial "
            "reported anything. Look at the trials' std.out and std.err in that folder."
        )
    chosen = metric or (names[0] if names else None)
    if chosen is None or chosen not in frame.columns:
        columns = sorted(c for c in frame.columns if not c.startswith(("st_", CONFIG_PREFIX)))
        raise ConfigurationError(
            f"Cannot rank the results in {path} by {chosen!r}: the results hold the "
            f"columns {', '.join(map(repr, columns))}. Pass --metric NAME."
        )
    return Results(
        path=path,
        name=path.name,
        frame=frame,
        metric=chosen,
        mode=mode,
        time_attr=ours.get("time_attr"),
        metadata=metadata,
    )


def best_trials_table(results: Results, top: int = 5) -> str:
    """The best ``top`` trials as a text table: rank, trial, metric, progress
    (``time_attr``) at that result, number of reports, and the hyperparameters
    that differ between trials.

    :param results: From :func:`load_results`
    :param top: Number of rows
    :return: The table, with a heading line
    """
    table = results.per_trial_best()
    n_trials = results.frame["trial_id"].nunique()
    if table.empty:
        return f"No trial of {results.name} reported {results.metric!r}."
    varying = [
        key
        for key in results.config_keys
        if results.frame[CONFIG_PREFIX + key].astype(str).nunique() > 1 or n_trials == 1
    ]
    headers = ["rank", "trial", results.metric]
    time_attr = results.time_attr if results.time_attr in results.frame.columns else None
    if time_attr:
        headers.append(time_attr)
    headers.append("reports")
    headers += varying
    rows = []
    for rank, (_, row) in enumerate(table.head(max(top, 1)).iterrows(), start=1):
        cells = [str(rank), str(int(row["trial_id"])), _cell(row[results.metric])]
        if time_attr:
            cells.append(_cell(row[time_attr]))
        cells.append(str(int(row["reports"])))
        cells += [_cell(row[CONFIG_PREFIX + key]) for key in varying]
        rows.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = [all(_is_numeric_text(r[i]) for r in rows) for i in range(len(headers))]

    def fmt(cells):
        return "  ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)
        ).rstrip()

    direction = "highest" if results.mode == "max" else "lowest"
    lines = [
        f"Best {len(rows)} of {n_trials} trials by {results.metric} ({direction} first):",
        fmt(headers),
        fmt(["-" * w for w in widths]),
    ]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def best_configuration_line(results: Results) -> str:
    best = results.best()
    if best is None:
        return f"No trial reported {results.metric!r}."
    trial_id, value, config = best
    return (
        f"Best configuration (trial {trial_id}, {results.metric} {_cell(value)}): "
        f"{json.dumps(config, default=str)}"
    )


def check_plotting() -> None:
    """Fail early when ``--plot`` cannot work.

    :raises ConfigurationError: matplotlib is not installed
    """
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigurationError(
            f"--plot needs matplotlib, which is not installed. Install it with "
            f"{PLOT_EXTRA_HINT}, or leave out --plot."
        )


def save_plot(results: Results, path: str | Path) -> Path:
    """Save a PNG: the metric over wall-clock time for every trial (thin lines)
    and the best value so far (thick step line).

    :param results: From :func:`load_results`
    :param path: The image file to write (``.png`` recommended)
    :return: The absolute path written
    """
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = results.frame.dropna(subset=[results.metric]).sort_values(TIME_COLUMN)
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    trials = sorted(df["trial_id"].unique())
    colors = plt.get_cmap("tab20")
    for i, trial_id in enumerate(trials):
        rows = df[df["trial_id"] == trial_id]
        ax.plot(
            rows[TIME_COLUMN],
            rows[results.metric],
            marker=".",
            markersize=3,
            linewidth=0.9,
            alpha=0.6,
            color=colors(i % 20),
        )
    running = df[results.metric].cummax() if results.mode == "max" else df[results.metric].cummin()
    ax.step(
        df[TIME_COLUMN],
        running,
        where="post",
        color="black",
        linewidth=2.2,
        label=f"best {results.metric} so far",
    )
    ax.set_xlabel("wall-clock time of the tuner (s)")
    ax.set_ylabel(results.metric)
    ax.set_title(f"{results.name}: {len(trials)} trials, one line each")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if results.mode == "max" else "upper right")
    fig.tight_layout()
    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _cell(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"


def _is_numeric_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
