import logging
import os
import shutil
from pathlib import Path

from syne_tune_localx.checkpoints import CheckpointMixin
from syne_tune_localx.hooks import BackendHooks


class StubHost(CheckpointMixin, BackendHooks):
    def __init__(self, root: Path):
        self.root = root
        super().__init__()

    def trial_path(self, trial_id):
        return self.root / str(trial_id)

    def trial_visible_path(self, trial_id):
        return Path("/seen/by/trial") / str(trial_id)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_checkpoint_folder_layout(tmp_path):
    host = StubHost(tmp_path)
    assert host.checkpoint_trial_path(3) == tmp_path / "3" / "checkpoints"


def test_argument_uses_the_path_the_trial_sees(tmp_path):
    args = StubHost(tmp_path)._extra_trial_arguments(3, {})
    assert args == ["--st_checkpoint_dir=/seen/by/trial/3/checkpoints"]


def test_copy_with_nested_files(tmp_path):
    host = StubHost(tmp_path)
    write(host.checkpoint_trial_path(0) / "model.pkl", "weights")
    write(host.checkpoint_trial_path(0) / "sub" / "opt.pkl", "state")
    host.copy_checkpoint(0, 1)
    assert (host.checkpoint_trial_path(1) / "model.pkl").read_text() == "weights"
    assert (host.checkpoint_trial_path(1) / "sub" / "opt.pkl").read_text() == "state"
    # the source is untouched
    assert (host.checkpoint_trial_path(0) / "model.pkl").read_text() == "weights"


def test_copy_replaces_an_existing_target(tmp_path):
    host = StubHost(tmp_path)
    write(host.checkpoint_trial_path(0) / "model.pkl", "new")
    write(host.checkpoint_trial_path(1) / "model.pkl", "old")
    write(host.checkpoint_trial_path(1) / "stale.pkl", "stale")
    host.copy_checkpoint(0, 1)
    assert (host.checkpoint_trial_path(1) / "model.pkl").read_text() == "new"
    assert not (host.checkpoint_trial_path(1) / "stale.pkl").exists()
    assert not list(tmp_path.glob("1/*.copying"))


def test_copy_from_missing_source_starts_clean_with_warning(tmp_path, caplog):
    host = StubHost(tmp_path)
    write(host.checkpoint_trial_path(1) / "model.pkl", "old")
    with caplog.at_level(logging.WARNING):
        host.copy_checkpoint(0, 1)
    assert host.checkpoint_trial_path(1).is_dir()
    assert list(host.checkpoint_trial_path(1).iterdir()) == []
    assert any("does not exist" in r.message and "trial 0" in r.message for r in caplog.records)


def test_copy_when_target_is_a_file(tmp_path):
    host = StubHost(tmp_path)
    write(host.checkpoint_trial_path(0) / "a", "x")
    write(host.checkpoint_trial_path(1), "not a folder")
    host.copy_checkpoint(0, 1)
    assert (host.checkpoint_trial_path(1) / "a").read_text() == "x"


def test_delete_is_idempotent(tmp_path):
    host = StubHost(tmp_path)
    write(host.checkpoint_trial_path(0) / "model.pkl", "weights")
    host.delete_checkpoint(0)
    assert not host.checkpoint_trial_path(0).exists()
    assert (tmp_path / "0").is_dir()  # only the checkpoints go
    host.delete_checkpoint(0)
    host.delete_checkpoint(42)


def test_copy_from_a_trial_that_replaces_its_files_meanwhile(tmp_path, monkeypatch):
    # PBT copies from running trials; a temp file renamed away between listing and
    # copying once raised shutil.Error out of start_trial and ended the tuning
    host = StubHost(tmp_path)
    write(host.checkpoint_trial_path(0) / "checkpoint.pkl", "v1")
    tmp_file = write(host.checkpoint_trial_path(0) / ".checkpoint.pkl.tmp", "v2")
    real_copy2 = shutil.copy2

    def copy2_while_trial_renames(src, dst, **kwargs):
        if src.endswith(".tmp"):
            os.replace(tmp_file, host.checkpoint_trial_path(0) / "checkpoint.pkl")
        return real_copy2(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copy2", copy2_while_trial_renames)
    host.copy_checkpoint(0, 1)
    copied = {p.name for p in host.checkpoint_trial_path(1).iterdir()}
    assert "checkpoint.pkl" in copied and ".checkpoint.pkl.tmp" not in copied


def test_checkpoint_folder_is_created_before_launch(tmp_path):
    # a script that writes into --st_checkpoint_dir without creating it failed
    assert StubHost(tmp_path)._trial_folders(3) == ["checkpoints"]
