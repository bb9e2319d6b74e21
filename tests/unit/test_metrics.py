"""Tests of :mod:`syne_tune_localx.metrics`: the incremental metric reader.

Everything here works on real files in ``tmp_path``; nothing is timed. The cost
of a poll is measured by counting the bytes the reader reads through ``open``.
"""

import builtins
import json
import logging

import pytest

from syne_tune_localx import metrics as metrics_module
from syne_tune_localx.metrics import MetricReader

LOGGER = "syne_tune_localx.metrics"


def metric_line(**values) -> str:
    return f"[tune-metric]: {json.dumps(values)}\n"


def append(path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    with open(path, "ab") as f:
        f.write(data)


def warnings_of(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


class _CountingFile:
    """Wraps a binary file and adds what every ``read`` returns to a counter."""

    def __init__(self, f, counter):
        self._f = f
        self._counter = counter

    def read(self, *args):
        data = self._f.read(*args)
        self._counter["bytes"] += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False


@pytest.fixture
def read_counter(monkeypatch):
    """Counts the bytes and the ``open`` calls of the metrics module."""
    counter = {"bytes": 0, "opens": 0}

    def counting_open(*args, **kwargs):
        counter["opens"] += 1
        return _CountingFile(builtins.open(*args, **kwargs), counter)

    monkeypatch.setattr(metrics_module, "open", counting_open, raising=False)
    return counter


def test_reads_only_new_lines_and_in_order(tmp_path):
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=0)
    append(log, "starting\n" + metric_line(epoch=1) + "noise [tune] line\n" + metric_line(epoch=2))
    assert reader.read_new() == [{"epoch": 1}, {"epoch": 2}]
    assert reader.read_new() == []
    append(log, metric_line(epoch=3))
    assert reader.read_new() == [{"epoch": 3}]
    assert reader.read_new() == []


def test_partial_last_line_is_held_back_until_its_newline(tmp_path):
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=0)
    line = metric_line(epoch=1, loss=0.5)
    append(log, line[:10])
    assert reader.read_new() == []
    append(log, line[10:-5])
    assert reader.read_new() == []
    append(log, line[-5:-1])  # everything but the newline
    assert reader.read_new() == []
    append(log, "\n" + metric_line(epoch=2)[:7])
    assert reader.read_new() == [{"epoch": 1, "loss": 0.5}]
    append(log, metric_line(epoch=2)[7:])
    assert reader.read_new() == [{"epoch": 2}]


def test_malformed_metric_lines_are_skipped_with_one_warning_each(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=7)
    append(
        log,
        metric_line(epoch=1)  # line 1
        + "[tune-metric]: {'epoch': 2, not json}\n"  # line 2: tag + invalid JSON
        + metric_line(epoch=2)  # line 3
        + "[tune-metric]: [1, 2, 3]\n"  # line 4: tag + JSON that is no object
        + metric_line(epoch=3),  # line 5
    )
    assert reader.read_new() == [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]
    warnings = warnings_of(caplog)
    assert len(warnings) == 2
    first, second = (w.getMessage() for w in warnings)
    assert "trial 7" in first and "line 2" in first and "not json" in first
    assert "trial 7" in second and "line 4" in second and "[1, 2, 3]" in second
    assert reader.skipped == 2

    # later reads neither repeat the metrics nor the warnings; line numbers go on
    append(log, '[tune-metric]: {"epoch": 4\n' + metric_line(epoch=5))  # line 6 bad, 7 good
    assert reader.read_new() == [{"epoch": 5}]
    assert reader.read_new() == []
    warnings = warnings_of(caplog)
    assert len(warnings) == 3
    assert "trial 7" in warnings[2].getMessage() and "line 6" in warnings[2].getMessage()


def test_json_scalar_and_string_payloads_are_skipped(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=1)
    append(log, "[tune-metric]: 42\n[tune-metric]: null\n" + metric_line(a=1))
    assert reader.read_new() == [{"a": 1}]
    assert len(warnings_of(caplog)) == 2


def test_a_partial_malformed_line_warns_once_when_completed(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=3)
    append(log, metric_line(epoch=1) + "[tune-metric]: {broken")
    assert reader.read_new() == [{"epoch": 1}]
    assert reader.read_new() == []
    assert warnings_of(caplog) == []
    append(log, " still broken}\n" + metric_line(epoch=2))
    assert reader.read_new() == [{"epoch": 2}]
    assert reader.read_new() == []
    warnings = warnings_of(caplog)
    assert len(warnings) == 1
    assert "trial 3" in warnings[0].getMessage() and "line 2" in warnings[0].getMessage()


def test_invalid_utf8_is_replaced_not_fatal(tmp_path, caplog):
    # syne-tune's reader dies with UnicodeDecodeError here; bad bytes inside a
    # string value become U+FFFD and the metric still counts
    caplog.set_level(logging.WARNING, logger=LOGGER)
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=0)
    append(log, b'[tune-metric]: {"a": "\xff\xfe"}\n\xff garbage\n' + metric_line(b=2).encode())
    assert reader.read_new() == [{"a": "\ufffd\ufffd"}, {"b": 2}]
    assert warnings_of(caplog) == []


def test_missing_file_reads_nothing_until_it_appears(tmp_path):
    log = tmp_path / "not-yet" / "std.out"
    reader = MetricReader(log, trial_id=0)
    assert reader.read_new() == []
    assert reader.read_new() == []
    log.parent.mkdir()
    append(log, metric_line(epoch=1))
    assert reader.read_new() == [{"epoch": 1}]


def test_truncated_file_is_read_again_from_the_start(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=0)
    append(log, "x" * 200 + "\n" + metric_line(epoch=1) + metric_line(epoch=2))
    assert reader.read_new() == [{"epoch": 1}, {"epoch": 2}]
    log.write_text(metric_line(epoch=9))  # truncate and write less than before
    assert reader.read_new() == [{"epoch": 9}]
    assert any("shrank" in w.getMessage() for w in warnings_of(caplog))
    # line numbers restart with the file
    append(log, "[tune-metric]: {bad}\n")
    assert reader.read_new() == []
    assert "line 2" in warnings_of(caplog)[-1].getMessage()


def test_skip_to_end_ignores_what_is_there_and_reads_what_follows(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=0)
    append(log, metric_line(epoch=1))
    assert reader.read_new() == [{"epoch": 1}]
    # what the previous process printed after the stop, including half a line
    append(log, metric_line(epoch=2) + metric_line(epoch=3) + '[tune-metric]: {"epoch"')
    reader.skip_to_end()
    assert reader.read_new() == []
    # the rest of the half line is no metric; the new process's lines are
    append(log, ': 4}\n' + metric_line(epoch=10) + metric_line(epoch=11))
    assert reader.read_new() == [{"epoch": 10}, {"epoch": 11}]
    assert reader.read_new() == []


def test_skip_to_end_on_a_missing_file(tmp_path):
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=0)
    reader.skip_to_end()
    append(log, metric_line(epoch=1))
    assert reader.read_new() == [{"epoch": 1}]


def test_a_poll_reads_only_the_bytes_written_since_the_last(tmp_path, read_counter):
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=0)
    body = ("training step with some words in it\n" * 50 + metric_line(epoch=0)) * 200
    append(log, body)
    assert len(reader.read_new()) == 200
    assert read_counter["bytes"] == len(body.encode())

    for epoch in range(1, 6):
        read_counter["bytes"] = 0
        new = "step\n" + metric_line(epoch=epoch)
        append(log, new)
        assert reader.read_new() == [{"epoch": epoch}]
        assert read_counter["bytes"] == len(new.encode())

    # nothing new: no byte read, the file is not even opened
    read_counter["bytes"] = read_counter["opens"] = 0
    assert reader.read_new() == []
    assert read_counter == {"bytes": 0, "opens": 0}


def test_a_poll_of_a_million_line_log_at_its_end_reads_nothing(tmp_path, read_counter):
    log = tmp_path / "std.out"
    with open(log, "w") as f:
        f.write("step 12 of 100, loss 0.25\n" * 999_999 + metric_line(epoch=1))
    reader = MetricReader(log, trial_id=0)
    assert reader.read_new() == [{"epoch": 1}]  # the one full read, up to the end
    read_counter["bytes"] = read_counter["opens"] = 0
    for _ in range(3):
        assert reader.read_new() == []
    assert read_counter == {"bytes": 0, "opens": 0}
    tail = metric_line(epoch=2)
    append(log, tail)
    assert reader.read_new() == [{"epoch": 2}]
    assert read_counter["bytes"] == len(tail.encode())


def test_a_poll_does_not_reread_a_long_unterminated_line(tmp_path, read_counter):
    log = tmp_path / "std.out"
    reader = MetricReader(log, trial_id=0)
    append(log, metric_line(epoch=1))
    assert reader.read_new() == [{"epoch": 1}]
    progress = "".join(f"\rstep {i:7d}/1000000" for i in range(50_000))  # ~1 MB, no newline
    append(log, progress)
    assert reader.read_new() == []
    read_counter["bytes"] = 0
    more = "\rstep 1000000/1000000"
    append(log, more)
    assert reader.read_new() == []
    assert read_counter["bytes"] == len(more.encode())
    append(log, "\n" + metric_line(epoch=2))
    assert reader.read_new() == [{"epoch": 2}]
