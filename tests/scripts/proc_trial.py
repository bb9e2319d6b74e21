"""A trial program for the process-level tests (standard library only).

Usage: ``proc_trial.py MODE OUTDIR [ARG...]``. Files it writes into OUTDIR tell
the test what happened; ``ready`` is written once signal handlers are in place.

Modes:

* ``trap``: on SIGTERM write ``stopped`` and exit 0
* ``ignore``: count SIGTERMs in ``terms`` and keep sleeping
* ``sleep SECONDS``: sleep, print a line, exit 0
* ``exit CODE``: exit with CODE
* ``busy SECONDS``: spin on the CPU for SECONDS of user CPU time
* ``alloc MIB``: allocate and touch MIB mebibytes, hold them a moment, exit 0
* ``detach popen|doublefork exit|wait``: start a helper that leaves the
  trial's session and ignores SIGTERM (pid and session in ``grandchild.pid``), then exit 0
  or wait to be stopped
* ``ids``: write pid, process group, session, parent, cwd and environment to
  ``ids.json``
* ``selfkill``: die by SIGKILL
"""

import json
import os
import signal
import subprocess
import sys
import time


def write(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def sleep_forever():
    while True:
        time.sleep(0.05)


def grandchild(outdir):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    write(os.path.join(outdir, "grandchild.pid"), f"{os.getpid()} {os.getsid(0)}")
    sleep_forever()


def detach(outdir, kind, then):
    pid_file = os.path.join(outdir, "grandchild.pid")
    if kind == "popen":
        subprocess.Popen(
            [sys.executable, __file__, "grandchild", outdir],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
    elif kind == "doublefork":
        first = os.fork()
        if first == 0:
            os.setsid()
            if os.fork() == 0:
                try:
                    grandchild(outdir)
                finally:
                    os._exit(0)
            os._exit(0)
        os.waitpid(first, 0)
    else:
        raise SystemExit(f"unknown detach kind {kind}")
    deadline = time.monotonic() + 10
    while not os.path.exists(pid_file):
        if time.monotonic() > deadline:
            raise SystemExit("grandchild did not start")
        time.sleep(0.01)
    write(os.path.join(outdir, "ready"), str(os.getpid()))
    if then == "wait":
        sleep_forever()


def main(argv):
    mode, outdir, args = argv[1], argv[2], argv[3:]
    if mode == "trap":

        def on_term(signum, frame):
            write(os.path.join(outdir, "stopped"), signal.Signals(signum).name)
            sys.exit(0)

        signal.signal(signal.SIGTERM, on_term)
        write(os.path.join(outdir, "ready"), str(os.getpid()))
        sleep_forever()
    elif mode == "ignore":

        def on_term(signum, frame):
            with open(os.path.join(outdir, "terms"), "a") as f:
                f.write(f"{time.time()}\n")

        signal.signal(signal.SIGTERM, on_term)
        write(os.path.join(outdir, "ready"), str(os.getpid()))
        sleep_forever()
    elif mode == "sleep":
        time.sleep(float(args[0]))
        print("slept", flush=True)
    elif mode == "exit":
        sys.exit(int(args[0]))
    elif mode == "busy":
        end = os.times().user + float(args[0])
        x = 0
        while os.times().user < end:
            x += 1
    elif mode == "alloc":
        block = bytearray(b"\x01") * (int(args[0]) << 20)
        time.sleep(0.8)  # long enough for the guard to sample the tree
        print(len(block), flush=True)
    elif mode == "detach":
        detach(outdir, args[0], args[1])
    elif mode == "grandchild":
        grandchild(outdir)
    elif mode == "ids":
        info = {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "sid": os.getsid(0),
            "ppid": os.getppid(),
            "cwd": os.getcwd(),
            "env": dict(os.environ),
        }
        write(os.path.join(outdir, "ids.json"), json.dumps(info))
    elif mode == "selfkill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(5)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
