"""Helpers the process and life-cycle tests share (tests/ is on sys.path)."""

import time
from pathlib import Path


def wait_for(predicate, timeout=10.0, what="condition", interval=0.02):
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def proc_state(pid: int) -> str | None:
    """State letter from /proc/<pid>/stat, ``None`` if no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:  # gone, or exiting while read (ProcessLookupError)
        return None
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()
