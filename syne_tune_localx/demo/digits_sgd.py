"""Demo training script: an SGD linear classifier on scikit-learn's digits.

One epoch is one ``partial_fit`` pass over the training split; after each epoch
the script writes a checkpoint and reports ``epoch`` and validation
``accuracy``. It resumes from ``<st_checkpoint_dir>/model.pkl`` when one
exists (a paused or PBT-copied trial) and, on SIGTERM, finishes the current
epoch and exits cleanly.
"""

import argparse
import os
import pickle
import signal
import time
from pathlib import Path

from syne_tune_localx.trial import Reporter, read_config

stop_requested = False
training = False


def _request_stop(signum, frame):
    global stop_requested
    if not training:
        # still starting up: there is nothing to save, so leave at once
        raise SystemExit(0)
    stop_requested = True


def main() -> None:
    global training
    signal.signal(signal.SIGTERM, _request_stop)
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--eta0", type=float, default=0.01)
    parser.add_argument("--learning_rate", type=str, default="optimal")
    parser.add_argument("--loss", type=str, default="hinge")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--epoch_seconds", type=float, default=0.0)
    config = read_config(parser)

    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split

    features, labels = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(
        features / 16.0, labels, test_size=0.25, random_state=0, stratify=labels
    )
    params = {k: config[k] for k in ("alpha", "eta0", "learning_rate", "loss")}

    checkpoint = Path(config["st_checkpoint_dir"] or ".") / "model.pkl"
    if checkpoint.is_file():
        with open(checkpoint, "rb") as f:
            state = pickle.load(f)
        model, first = state["model"], state["epoch"] + 1
        model.set_params(**params)  # PBT may hand over a changed configuration
    else:
        model, first = SGDClassifier(random_state=0, **params), 1
        state = None

    training = True
    report = Reporter()
    if state is not None and first > config["epochs"]:
        # resumed from a finished checkpoint (PBT copies those): nothing to
        # train, but the tuner needs one result
        report(epoch=state["epoch"], accuracy=float(model.score(x_valid, y_valid)))
    for epoch in range(first, config["epochs"] + 1):
        if stop_requested:  # stopped or paused: the last checkpoint is complete
            break
        model.partial_fit(x_train, y_train, classes=list(range(10)))
        if config["st_checkpoint_dir"]:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                pickle.dump({"model": model, "epoch": epoch}, f)
            os.replace(tmp, checkpoint)
        report(epoch=epoch, accuracy=float(model.score(x_valid, y_valid)))
        time.sleep(config["epoch_seconds"])


if __name__ == "__main__":
    main()
