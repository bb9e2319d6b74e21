"""The extension surface shared by :class:`~syne_tune_localx.backend.LocalXBackend`
and its mixins.

The backend builds each trial launch from a handful of hooks. Mixins override
them and never call or read each other; each owns state prefixed by its concern
(``_gpu_*``, ``_args_*``, ``_ckpt_*``). :class:`BackendHooks` is the root that
every mixin derives from: it holds the no-op end of each cooperative chain.

Cooperative hooks (override, call ``super()``, combine the result):

* :meth:`_trial_wait_reason` -- why a trial cannot start yet (``None``: it can).
  A trial with a reason is accepted and waits; the backend asks again at every
  poll and launches it as soon as every mixin answers ``None``.
* :meth:`_trial_environment` -- environment variables to add for one launch.
* :meth:`_extra_trial_arguments` -- arguments appended after the config ones.
* :meth:`_trial_files` -- files to write into the trial folder before launch.
* :meth:`_trial_folders` -- folders to create in the trial folder before launch.
* :meth:`_on_trial_process_end` -- the launch's process is gone (exited, killed,
  or the launch failed after the environment was computed); release what the
  launch held. Called exactly once per successful :meth:`_trial_environment` call.
* :meth:`_cleanup_after_trial` -- from ``TrialBackend``: stop or pause was requested.
* :meth:`_on_poll` -- the tuner polls the backend (``fetch_status_results``,
  ``busy_trial_ids``); called before waiting trials are started. Keep it
  cheap: throttle anything costly (the GPU mixin reads NVML at most once per
  ``gpu_poll_interval``).

Single-owner hooks (overridden once, by one mixin or by the host):

* :meth:`_config_arguments` -- how the config becomes arguments (owned by the
  argument mixin).
* :meth:`trial_visible_path` -- a trial folder as the *trial* sees it; every
  path a mixin puts into argv is derived from it (owned by the host).
* :meth:`trial_process_ids` -- pids of a running trial's process tree, so a
  mixin can tell the trial's own processes from others (owned by the host;
  the root answers "none known").

Public attributes of the host a mixin may read: ``trial_path(trial_id)``,
``delete_checkpoints``, ``pass_args_as_json``.
"""

from pathlib import Path
from typing import Any


class BackendHooks:
    """Root of the hook chains; see the module docstring for the contract."""

    def __init__(self, **kwargs):
        try:
            super().__init__(**kwargs)
        except TypeError as err:
            if "unexpected keyword argument" not in str(err):
                raise
            from syne_tune_localx.errors import ConfigurationError
            from syne_tune_localx.registry import backend_options

            accepted = sorted(backend_options(type(self)) or ())
            unknown = sorted(k for k in kwargs if k not in accepted)
            raise ConfigurationError(
                f"{type(self).__name__} got unknown option(s) {unknown}; accepted "
                f"options: {accepted}. Check the spelling"
            ) from err

    # --- single owner -------------------------------------------------
    def trial_visible_path(self, trial_id: int) -> Path:
        """
        :param trial_id: ID of trial
        :return: The trial folder as the trial process sees it. Locally this is
            ``trial_path(trial_id)``; a backend that runs trials elsewhere
            returns the folder on that machine.
        """
        raise NotImplementedError

    def _config_arguments(self, trial_id: int, config: dict[str, Any]) -> list[str]:
        """
        :param trial_id: ID of trial
        :param config: Configuration of the trial
        :return: argv entries that carry the configuration to the script
        """
        raise NotImplementedError

    def trial_process_ids(self, trial_id: int) -> set[int]:
        """
        :param trial_id: ID of trial
        :return: Process IDs of the trial's current launch, everything it
            started included, while it runs; empty if it does not run or the
            host cannot tell. Reads the live process table: call it at most
            once per trial per poll.
        """
        return set()

    # --- cooperative --------------------------------------------------
    def _trial_wait_reason(self, trial_id: int, config: dict[str, Any]) -> str | None:
        """
        :param trial_id: ID of trial about to be launched
        :param config: Configuration of the trial
        :return: ``None`` if the trial may start now, otherwise a short reason
            why it waits. An override returns the first reason of
            ``super()`` unchanged, and its own otherwise.
        """
        return None

    def _trial_environment(self, trial_id: int, config: dict[str, Any]) -> dict[str, str]:
        """
        :param trial_id: ID of trial about to be launched
        :param config: Configuration of the trial
        :return: Environment variables to add for this launch. May reserve
            resources; :meth:`_on_trial_process_end` releases them.
        """
        return {}

    def _extra_trial_arguments(self, trial_id: int, config: dict[str, Any]) -> list[str]:
        """
        :param trial_id: ID of trial about to be launched
        :param config: Configuration of the trial
        :return: argv entries appended after the configuration arguments
        """
        return []

    def _trial_files(self, trial_id: int, config: dict[str, Any]) -> dict[str, str]:
        """
        :param trial_id: ID of trial about to be launched
        :param config: Configuration of the trial
        :return: ``{file name relative to the trial folder: text}`` written
            before the launch
        """
        return {}

    def _trial_folders(self, trial_id: int) -> list[str]:
        """
        :param trial_id: ID of trial about to be launched
        :return: Folders, relative to the trial folder, that must exist when the
            trial starts
        """
        return []

    def _on_trial_process_end(self, trial_id: int) -> None:
        """The process of the latest launch of ``trial_id`` is really gone.

        :param trial_id: ID of trial
        """

    def _on_poll(self) -> None:
        """The tuner polls the backend; called before waiting trials are
        started. Must be cheap: it runs many times per second."""
