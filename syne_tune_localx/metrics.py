"""Incremental reading of the ``[tune-metric]: {...}`` lines a trial prints.

A poll costs one ``stat`` when nothing was written, and otherwise reads only the
bytes written since the last poll: the cost does not grow with the log.
"""

import json
import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

METRIC_TAG = "tune-metric"
_TAG_BYTES = f"[{METRIC_TAG}]: ".encode()
_METRIC_RE = re.compile(rb"\[" + re.escape(METRIC_TAG.encode()) + rb"\]: (\{.*\})")


class MetricReader:
    """Reads the metrics of one trial from its stdout file, a piece at a time.

    Holds an offset and the number of lines consumed; a partial last line (the
    trial is in the middle of writing it) is left for the next read. A line
    tagged as a metric whose payload is not a JSON object is skipped with one
    warning naming the trial and the line; tuning goes on.

    :param path: The trial's stdout file; it may not exist yet
    :param trial_id: ID of the trial, for messages
    """

    def __init__(self, path: Path, trial_id: int):
        self.path = Path(path)
        self.trial_id = trial_id
        self.offset = 0
        self.line_number = 0
        self.skipped = 0

    def read_new(self) -> list[dict]:
        """
        :return: Metrics completed since the previous call, in order
        """
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            logger.warning(
                f"trial {self.trial_id}: {self.path} shrank from {self.offset} to {size} "
                f"bytes (truncated by someone else?); reading it again from the start"
            )
            self.offset = 0
            self.line_number = 0
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(size - self.offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        metrics = []
        for line in chunk[:end].split(b"\n"):
            self.line_number += 1
            if _TAG_BYTES not in line:
                continue
            metric = self._parse(line)
            if metric is not None:
                metrics.append(metric)
        return metrics

    def skip_to_end(self) -> None:
        """Ignore what the file holds now: used when a trial is resumed, so what
        the previous process printed after it was asked to stop is not taken
        as a result of the new one."""
        self.read_new()
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size > self.offset:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                self.line_number += f.read(size - self.offset).count(b"\n")
            self.offset = size

    def _parse(self, line: bytes) -> dict | None:
        match = _METRIC_RE.search(line)
        error = "no JSON object after the tag"
        if match is not None:
            try:
                metric = json.loads(match.group(1))
                if isinstance(metric, dict):
                    return metric
                error = "payload is not a JSON object"
            except ValueError as err:
                error = str(err)
        self.skipped += 1
        text = line.decode("utf-8", "replace")
        logger.warning(
            f"trial {self.trial_id}: skipped a malformed metric at line "
            f"{self.line_number} of {self.path} ({error}): {text[:200]}"
        )
        return None
