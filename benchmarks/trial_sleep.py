"""The trial that ``bench_backends.py`` launches through both backends.

It imports only the standard library, so what is timed is the backend and not
an import of syne-tune (which alone costs about 0.6 s per trial start). It

* exits with status 0 on SIGTERM, as a trial that saves nothing and stops
  cleanly would;
* writes its own pid to ``--pid_file`` (atomically), so the harness can watch
  the trial process itself whether or not a guard process sits in between;
* with ``--first_metric 1`` prints one metric line in the format of syne-tune's
  ``Reporter`` (``[tune-metric]: {...}``, flushed) right after that;
* then sleeps for ``--sleep`` seconds at most, printing nothing more: the
  harness appends to ``std.out`` itself where it needs a long log.

Other arguments (``--st_checkpoint_dir`` from both backends) are ignored.
"""

import argparse
import json
import os
import signal
import sys
import time


def _exit_on_sigterm(signum, frame):
    sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid_file", required=True)
    parser.add_argument("--first_metric", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=300.0)
    args, _ = parser.parse_known_args()

    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    tmp = f"{args.pid_file}.tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, args.pid_file)

    if args.first_metric:
        now = time.time()
        line = {
            "epoch": 1,
            "loss": 1.0,
            "st_worker_timestamp": now,
            "st_worker_time": 0.0,
            "st_worker_iter": 0,
        }
        print(f"[tune-metric]: {json.dumps(line)}", flush=True)

    deadline = time.monotonic() + args.sleep
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(left, 1.0))


if __name__ == "__main__":
    main()
