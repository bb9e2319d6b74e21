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
_TAGGED_RE = re.compile(re.escape(f"[{METRIC_TAG}]: ") + "(.*)$", re.MULTILINE)


# an unfinished line kept between polls is capped: a metric line is under
# 50 kB (syne-tune's Reporter asserts it), a progress bar redrawn with "\r" and
# no newline may grow without end
MAX_TAIL_BYTES = 256 * 1024


class MetricReader:
    """Reads the metrics of one trial from its stdout file, a piece at a time.

    Holds the offset of the bytes read so far and the unfinished last line
    (the trial is in the middle of writing it), so no byte is read twice. A
    line tagged as a metric whose payload is not a JSON object is skipped with
    one warning naming the trial and the line; tuning goes on.

    :param path: The trial's stdout file; it may not exist yet
    :param trial_id: ID of the trial, for messages
    """

    def __init__(self, path: Path, trial_id: int):
        self.path = Path(path)
        self.trial_id = trial_id
        self.offset = 0
        self.tail = b""
        self.line_number = 0
        self.skipped = 0

    def read_new(self) -> list[dict]:
        """
        :return: Metrics completed since the previous call, in order
        """
        chunk = self._read_from_offset()
        if not chunk:
            return []
        data = self.tail + chunk
        end = data.rfind(b"\n")
        if end < 0:
            self.tail = data[-MAX_TAIL_BYTES:]
            return []
        self.tail = data[end + 1 :][-MAX_TAIL_BYTES:]
        lines = data[:end].decode("utf-8", "replace")
        first_line = self.line_number + 1
        self.line_number += lines.count("\n") + 1
        metrics = []
        # one scan over the chunk finds the tagged lines; line numbers are only
        # counted for the rare malformed one
        for match in _TAGGED_RE.finditer(lines):
            metric, error = _parse_payload(match.group(1))
            if metric is None:
                number = first_line + lines.count("\n", 0, match.start())
                self._warn(lines, match.start(), number, error)
            else:
                metrics.append(metric)
        return metrics

    def skip_to_end(self) -> None:
        """Ignore what the file holds now: used when a trial is resumed, so what
        the previous process printed after it was asked to stop is not taken
        as a result of the new one."""
        chunk = self._read_from_offset()
        self.line_number += (self.tail + chunk).count(b"\n")
        self.tail = b""

    def _read_from_offset(self) -> bytes:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return b""
        if size < self.offset:
            logger.warning(
                f"trial {self.trial_id}: {self.path} shrank from {self.offset} to {size} "
                f"bytes (truncated by someone else?); reading it again from the start"
            )
            self.offset = 0
            self.tail = b""
            self.line_number = 0
        if size == self.offset:
            return b""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(size - self.offset)
        self.offset += len(chunk)
        return chunk

    def _warn(self, text: str, position: int, number: int, error: str) -> None:
        self.skipped += 1
        start = text.rfind("\n", 0, position) + 1
        end = text.find("\n", position)
        line = text[start : end if end >= 0 else len(text)]
        logger.warning(
            f"trial {self.trial_id}: skipped a malformed metric at line "
            f"{number} of {self.path} ({error}): {line[:200]}"
        )


def _parse_payload(payload: str) -> tuple[dict | None, str]:
    """
    :param payload: What follows the tag on its line
    :return: ``(metric, "")``, or ``(None, what is wrong)``
    """
    # like syne-tune's reader: from the first "{" to the last "}" of the line
    first, last = payload.find("{"), payload.rfind("}")
    if first != 0 or last < 0:
        return None, "no JSON object after the tag"
    try:
        metric = json.loads(payload[: last + 1])
    except ValueError as err:
        return None, str(err)
    if not isinstance(metric, dict):
        return None, "payload is not a JSON object"
    return metric, ""
