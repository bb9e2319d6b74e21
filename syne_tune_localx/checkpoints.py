"""Checkpoint folders of trials: :class:`CheckpointMixin`."""

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from syne_tune_localx.hooks import BackendHooks
from syne_tune_localx.trial import CHECKPOINT_DIR_ARG

logger = logging.getLogger(__name__)

CHECKPOINT_FOLDER_NAME = "checkpoints"


def _copy_if_present(src: str, dst: str) -> None:
    try:
        shutil.copy2(src, dst)
    except FileNotFoundError:
        if os.path.lexists(src):
            raise  # the target side is missing: a real error
        logger.debug(f"{src} vanished while copying the checkpoint; skipped")


class CheckpointMixin(BackendHooks):
    """Gives each trial the folder ``<trial folder>/checkpoints``, passed to
    the script as ``--st_checkpoint_dir``, and copies and deletes it.

    ``delete_checkpoints`` stays owned by ``TrialBackend.__init__``, which
    calls :meth:`delete_checkpoint` on stop and at the end.
    """

    def checkpoint_trial_path(self, trial_id: int) -> Path:
        """
        :param trial_id: ID of trial
        :return: Directory where checkpoints for trial are written to and
            read from
        """
        return self.trial_path(trial_id) / CHECKPOINT_FOLDER_NAME

    def copy_checkpoint(self, src_trial_id: int, tgt_trial_id: int):
        """Copy the checkpoint folder from one trial to the other.

        A missing source leaves the target empty (the new trial starts clean)
        and logs a warning; an existing target is replaced.

        :param src_trial_id: Source trial ID (copy from)
        :param tgt_trial_id: Target trial ID (copy to)
        """
        src = self.checkpoint_trial_path(src_trial_id)
        tgt = self.checkpoint_trial_path(tgt_trial_id)
        if tgt.exists() or tgt.is_symlink():
            if tgt.is_dir() and not tgt.is_symlink():
                shutil.rmtree(tgt)
            else:
                tgt.unlink()
        if not src.is_dir():
            logger.warning(
                f"trial {tgt_trial_id} was to start from the checkpoint of trial "
                f"{src_trial_id}, but {src} does not exist; it starts from scratch"
            )
            tgt.mkdir(parents=True, exist_ok=True)
            return
        tgt.parent.mkdir(parents=True, exist_ok=True)
        # copy next to the target, then rename, so a failed copy leaves no half folder
        tmp = tgt.with_name(tgt.name + ".copying")
        shutil.rmtree(tmp, ignore_errors=True)
        # the source trial may still run (PBT copies from live trials) and replace
        # its checkpoint files while we copy: a file that vanished between listing
        # and copying is skipped, its replacement is already in the listing or not
        shutil.copytree(src, tmp, symlinks=True, copy_function=_copy_if_present)
        tmp.rename(tgt)

    def delete_checkpoint(self, trial_id: int):
        """Removes checkpoint folder for a trial. It is OK for the folder not to
        exist.

        :param trial_id: ID of trial for which checkpoint files are deleted
        """
        shutil.rmtree(self.checkpoint_trial_path(trial_id), ignore_errors=True)

    def _trial_folders(self, trial_id: int) -> list[str]:
        # scripts open files in --st_checkpoint_dir without creating it first
        return super()._trial_folders(trial_id) + [CHECKPOINT_FOLDER_NAME]

    def _extra_trial_arguments(self, trial_id: int, config: dict[str, Any]) -> list[str]:
        args = super()._extra_trial_arguments(trial_id, config)
        path = self.trial_visible_path(trial_id) / CHECKPOINT_FOLDER_NAME
        return args + [f"--{CHECKPOINT_DIR_ARG}={path}"]
