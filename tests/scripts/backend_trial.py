"""A training script for the backend and Tuner tests (standard library only, so
it starts fast).

It reports ``epoch`` and ``loss`` once per epoch as ``[tune-metric]: {...}``
lines with the fields syne-tune's ``Reporter`` adds, and writes ``info.json``
(pid, parent, process group, cwd, thread variables) into its trial folder
(the parent of ``--st_checkpoint_dir``).

Options (unknown ones are ignored, so any config space works):

* ``--epochs N`` (the environment variable ``LOCALX_TEST_EPOCHS`` overrides it)
* ``--epoch_time SECONDS``
* ``--on_term default|checkpoint|ignore``: ``checkpoint`` writes
  ``<st_checkpoint_dir>/state.json`` with the last finished epoch and exits 0;
  a restarted trial continues after that epoch
* ``--pid_dir DIR``: write ``DIR/<pid>.json`` at start
* ``--bad_metrics 1``: after every epoch, print two malformed metric lines
* ``--write_relative 1``: write ``out.txt`` (the trial id) into the cwd
"""

import argparse
import json
import os
import signal
import sys
import time

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def write(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def report(iteration, **metrics):
    metrics["st_worker_timestamp"] = time.time()
    metrics["st_worker_iter"] = iteration
    print(f"[tune-metric]: {json.dumps(metrics)}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--epoch_time", type=float, default=0.05)
    parser.add_argument("--on_term", default="default")
    parser.add_argument("--pid_dir", default=None)
    parser.add_argument("--bad_metrics", type=int, default=0)
    parser.add_argument("--write_relative", type=int, default=0)
    parser.add_argument("--st_checkpoint_dir", default=None)
    args, _ = parser.parse_known_args()
    epochs = int(os.environ.get("LOCALX_TEST_EPOCHS", args.epochs))
    trial_id = os.environ.get("SYNE_TUNE_LOCALX_TRIAL_ID")

    ckpt_dir = args.st_checkpoint_dir
    state_path = os.path.join(ckpt_dir, "state.json") if ckpt_dir else None
    done = 0
    if state_path and os.path.exists(state_path):
        with open(state_path) as f:
            done = json.load(f)["epoch"]
        print(f"resumed from epoch {done}", flush=True)
    else:
        print("started from scratch", flush=True)

    if args.on_term == "checkpoint":

        def on_term(signum, frame):
            os.makedirs(ckpt_dir, exist_ok=True)
            write(state_path, json.dumps({"epoch": done}))
            print(f"checkpointed at epoch {done}", flush=True)
            sys.exit(0)

        signal.signal(signal.SIGTERM, on_term)
    elif args.on_term == "ignore":
        signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))

    info = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "pgid": os.getpgid(0),
        "trial_id": trial_id,
        "cwd": os.getcwd(),
        "env": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "argv": sys.argv,
    }
    if ckpt_dir:
        write(os.path.join(os.path.dirname(ckpt_dir), "info.json"), json.dumps(info))
    if args.pid_dir:
        write(os.path.join(args.pid_dir, f"{os.getpid()}.json"), json.dumps(info))
    if args.write_relative:
        write("out.txt", str(trial_id))

    iteration = 0
    while done < epochs:
        time.sleep(args.epoch_time)
        done += 1
        report(iteration, epoch=done, loss=1.0 / done)
        iteration += 1
        if args.bad_metrics:
            print(f"[tune-metric]: {{'epoch': {done}, not json}}", flush=True)
            print("[tune-metric]: [1, 2, 3]", flush=True)


if __name__ == "__main__":
    main()
