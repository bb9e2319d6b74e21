"""Train a linear classifier on scikit-learn's handwritten digits, epoch by
epoch, reporting validation accuracy to syne-tune after each epoch.

The data set (``sklearn.datasets.load_digits``: 1797 8x8 images, 10 classes)
ships inside scikit-learn, so the script runs offline. A fixed, stratified
split keeps 75% for training and 25% for validation; every trial sees the same
split, so accuracies of different configurations compare fairly.

Hyperparameters (one ``--<key>`` flag each, as any syne-tune backend passes
them; :func:`syne_tune_localx.trial.read_config` also reads JSON mode):

* ``--epochs`` (int): passes over the training set
* ``--alpha`` (float): L2 regularisation strength of ``SGDClassifier``
* ``--eta0`` (float): initial learning rate (ignored by ``optimal``)
* ``--learning_rate`` (str): ``optimal``, ``constant``, ``invscaling`` or ``adaptive``
* ``--loss`` (str): ``hinge``, ``log_loss`` or ``modified_huber``
* ``--shuffle`` (bool): shuffle the training set in each epoch
* ``--epoch_seconds`` (float): extra seconds per epoch, to simulate a longer
  training (default: environment variable ``DIGITS_EPOCH_SECONDS``, else 0)

Checkpointing: after every epoch the model and the epoch are written to
``<st_checkpoint_dir>/checkpoint.pkl`` (to a temporary file first, then
renamed, so a reader never sees half a file). At start, an existing checkpoint
is loaded and training continues with the next epoch, under the hyperparameters
of the current configuration (that is what population-based training expects of
a trial that starts from another trial's checkpoint). The script prints
``resumed from epoch N of trial T`` when it does.

SIGTERM (a stop or pause from the backend) is trapped: the current epoch ends,
its checkpoint is already written, and the script exits with status 0.
"""

import argparse
import os
import pickle
import signal
import sys
import time
from pathlib import Path

from syne_tune_localx.trial import Reporter, parse_bool, read_config

CHECKPOINT_FILE = "checkpoint.pkl"
LEARNING_RATES = ("optimal", "constant", "invscaling", "adaptive")
LOSSES = ("hinge", "log_loss", "modified_huber")
# keys of the configuration that are SGDClassifier parameters
MODEL_KEYS = ("alpha", "eta0", "learning_rate", "loss", "shuffle")


class StopRequest:
    """Remembers a SIGTERM/SIGINT instead of dying on it, so that the training
    loop can end at an epoch boundary, where a checkpoint exists."""

    def __init__(self):
        self.requested = False
        self.signal_name = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def sleep(self, seconds: float) -> None:
        # in short slices, so that a stop does not wait for the whole pause
        deadline = time.monotonic() + seconds
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.01))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--eta0", type=float, default=0.01)
    parser.add_argument("--learning_rate", type=str, default="optimal", choices=LEARNING_RATES)
    parser.add_argument("--loss", type=str, default="hinge", choices=LOSSES)
    parser.add_argument("--shuffle", type=parse_bool, default=True)
    parser.add_argument(
        "--epoch_seconds",
        type=float,
        default=float(os.environ.get("DIGITS_EPOCH_SECONDS", "0")),
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def trial_name(checkpoint_dir: str | None) -> str:
    # syne-tune's layout is <results>/<trial_id>/checkpoints
    return Path(checkpoint_dir).parent.name if checkpoint_dir else "?"


def load_checkpoint(checkpoint_dir: str | None) -> dict | None:
    if not checkpoint_dir:
        return None
    path = Path(checkpoint_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        return pickle.load(f)


def save_checkpoint(checkpoint_dir: str, state: dict) -> None:
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{CHECKPOINT_FILE}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / CHECKPOINT_FILE)


def load_data(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel values are 0..16
    return train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)


def main() -> int:
    # before the slow imports: a stop during start-up must not kill us mid-way
    stop = StopRequest()
    config = read_config(make_parser())
    checkpoint_dir = config["st_checkpoint_dir"]
    me = trial_name(checkpoint_dir)

    import numpy as np
    from sklearn.linear_model import SGDClassifier

    X_train, X_valid, y_train, y_valid = load_data()
    classes = np.unique(y_train)
    params = {key: config[key] for key in MODEL_KEYS}

    state = load_checkpoint(checkpoint_dir)
    if state is None:
        model = SGDClassifier(random_state=config["seed"], **params)
        history = []
        first_epoch = 1
        print(f"trial {me}: starting from scratch with {params}", flush=True)
    else:
        model = state["model"]
        # the current configuration wins (PBT changes it when it copies a checkpoint)
        model.set_params(**params)
        history = state["history"]
        first_epoch = state["epoch"] + 1
        print(
            f"trial {me}: resumed from epoch {state['epoch']} of trial {state['trial']} "
            f"(accuracy {state['accuracy']:.4f}), continuing with {params}",
            flush=True,
        )

    report = Reporter()
    epoch = first_epoch - 1
    if state is not None and first_epoch > config["epochs"]:
        # a copied checkpoint may already be fully trained; a trial that ends
        # without reporting anything counts as failed in syne-tune's Tuner
        report(epoch=state["epoch"], accuracy=state["accuracy"])
        print(f"trial {me}: nothing left to train ({config['epochs']} epochs)", flush=True)
        return 0
    for epoch in range(first_epoch, config["epochs"] + 1):
        if stop.requested:
            epoch -= 1
            break
        model.partial_fit(X_train, y_train, classes=classes)
        accuracy = float(model.score(X_valid, y_valid))
        history.append({"trial": me, "epoch": epoch, "accuracy": accuracy})
        if checkpoint_dir:
            # written before the report: whatever the tuner decides on seeing
            # this epoch, the checkpoint already holds it
            save_checkpoint(
                checkpoint_dir,
                {
                    "model": model,
                    "epoch": epoch,
                    "accuracy": accuracy,
                    "trial": me,
                    "config": params,
                    "history": history,
                },
            )
        report(epoch=epoch, accuracy=accuracy)
        stop.sleep(config["epoch_seconds"])

    if stop.requested:
        print(f"trial {me}: {stop.signal_name} received, stopped after epoch {epoch}", flush=True)
    else:
        print(f"trial {me}: finished after epoch {epoch}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
