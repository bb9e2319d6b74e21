"""GPU inventory and GPU placement of trials.

Two parts, kept apart on purpose:

* :class:`NvmlInventory` answers *which GPUs does this process see*. It asks
  NVML through the ``pynvml`` module (from ``nvidia-ml-py``) and honours the
  tuner's ``CUDA_VISIBLE_DEVICES``. It starts no process and writes no file.
  Anything with a ``devices() -> list[GpuDevice]`` method can stand in for it.
* :class:`GpuRotationMixin` decides *which of those GPUs a trial gets* and
  tells the trial through ``CUDA_VISIBLE_DEVICES``.

Numbering. The mixin and ``gpus_to_use`` speak of *positions*: position ``k``
is the ``k``-th GPU visible to the tuner, in the order of its
``CUDA_VISIBLE_DEVICES`` (or NVML order when that is unset). Numeric entries
of ``CUDA_VISIBLE_DEVICES`` are read as NVML indices, which follow the PCI bus
order, and every trial is started with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so
that CUDA inside the trial numbers the GPUs the same way.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import types
from dataclasses import dataclass, replace
from typing import Any, Protocol

from syne_tune_localx.errors import ConfigurationError
from syne_tune_localx.hooks import BackendHooks

logger = logging.getLogger(__name__)

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"

_INDEX_ENTRY = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class GpuDevice:
    """One GPU as seen by the tuner process.

    :param index: NVML index (PCI bus order) of the device
    :param uuid: NVML UUID, such as ``GPU-5e2c...``
    :param name: Product name, such as ``NVIDIA H200``
    :param memory_total: Total device memory, in bytes
    :param memory_used: Device memory in use when queried, in bytes
    :param utilization: GPU utilisation in percent when queried, or ``None``
        if the device does not report it
    :param cuda_id: How to name this device in a child's
        ``CUDA_VISIBLE_DEVICES``: the UUID if the tuner's own
        ``CUDA_VISIBLE_DEVICES`` named it by UUID, else the NVML index
    """

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_used: int
    utilization: int | None = None
    cuda_id: str = ""

    def __post_init__(self):
        if not self.cuda_id:
            object.__setattr__(self, "cuda_id", str(self.index))

    def describe(self) -> str:
        return f"{self.cuda_id} ({self.name}, {self.uuid})"


class GpuInventory(Protocol):
    """What :class:`GpuRotationMixin` needs to know about the machine."""

    def devices(self) -> list[GpuDevice]:
        """
        :return: GPUs visible to this process, in the order CUDA numbers them
        """
        ...


def _text(value: Any) -> str:
    # Old nvidia-ml-py releases return bytes, newer ones str.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class NvmlInventory:
    """GPUs visible to this process, read from NVML.

    Every call of :meth:`devices` initialises NVML, reads what it needs and
    shuts NVML down again, so no live handle is ever held (the object pickles).

    :param nvml: A module-like object with the ``pynvml`` API (``nvmlInit``,
        ``nvmlDeviceGetCount``, ``nvmlDeviceGetHandleByIndex``,
        ``nvmlDeviceGetUUID``, ``nvmlDeviceGetName``,
        ``nvmlDeviceGetMemoryInfo``, ``nvmlShutdown``, ``NVMLError``; optionally
        ``nvmlDeviceGetUtilizationRates``). Defaults to ``pynvml``, imported
        when first needed. Tests pass a fake here.
    """

    def __init__(self, nvml: Any = None):
        self._nvml = nvml
        self._told_unavailable = False
        self._told_entries: set[str] = set()
        #: Why the last :meth:`devices` call found no GPU, or ``None``
        self.unavailable_reason: str | None = None

    # A module (such as ``pynvml`` passed explicitly) does not pickle with the
    # standard pickler; keep its name and import it again on load.
    def __getstate__(self):
        state = self.__dict__.copy()
        if isinstance(self._nvml, types.ModuleType):
            state["_nvml"] = ("module", self._nvml.__name__)
        return state

    def __setstate__(self, state):
        nvml = state.get("_nvml")
        if isinstance(nvml, tuple) and len(nvml) == 2 and nvml[0] == "module":
            state["_nvml"] = importlib.import_module(nvml[1])
        self.__dict__.update(state)

    def _no_gpus(self, reason: str) -> list[GpuDevice]:
        self.unavailable_reason = reason
        if not self._told_unavailable:
            self._told_unavailable = True
            logger.info(f"No GPU will be used by trials: {reason}")
        return []

    def _warn_entry(self, cvd: str, message: str) -> None:
        # Once per distinct problem: the inventory may be asked many times.
        if message not in self._told_entries:
            self._told_entries.add(message)
            logger.warning(f"CUDA_VISIBLE_DEVICES={cvd!r}: {message}")

    def _query_all(self, nvml: Any) -> list[GpuDevice]:
        devices = []
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            utilization = None
            get_utilization = getattr(nvml, "nvmlDeviceGetUtilizationRates", None)
            if get_utilization is not None:
                try:
                    utilization = int(get_utilization(handle).gpu)
                except Exception:  # not supported on every device (MIG, vGPU)
                    utilization = None
            devices.append(
                GpuDevice(
                    index=index,
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    memory_total=int(memory.total),
                    memory_used=int(memory.used),
                    utilization=utilization,
                )
            )
        return devices

    def _select_visible(self, all_devices: list[GpuDevice], cvd: str) -> list[GpuDevice]:
        """Applies ``CUDA_VISIBLE_DEVICES`` the way the CUDA runtime does:
        entries are read left to right and the first one that names no device
        (or a device already named) ends the list."""
        visible: list[GpuDevice] = []
        seen: set[int] = set()
        for raw in cvd.split(","):
            entry = raw.strip()
            device = None
            if _INDEX_ENTRY.fullmatch(entry):
                index = int(entry)
                if index < len(all_devices):
                    device = all_devices[index]
                else:
                    problem = f"there is no GPU with index {index}"
            elif entry[:4].upper() == "GPU-":
                prefix = entry.lower()
                matches = [d for d in all_devices if d.uuid.lower().startswith(prefix)]
                if len(matches) == 1:
                    device = replace(matches[0], cuda_id=matches[0].uuid)
                elif matches:
                    problem = f"{entry!r} matches more than one GPU"
                else:
                    problem = f"no GPU has a UUID starting with {entry!r}"
            elif entry[:4].upper() == "MIG-":
                problem = f"MIG device {entry!r} is not supported for GPU placement"
            else:
                problem = f"{entry!r} is neither a GPU index nor a GPU UUID"
            if device is not None and device.index in seen:
                device, problem = None, f"{entry!r} names a GPU already listed"
            if device is None:
                self._warn_entry(
                    cvd, f"{problem}; CUDA ignores this entry and all after it"
                )
                break
            seen.add(device.index)
            visible.append(device)
        return visible

    def devices(self) -> list[GpuDevice]:
        """
        :return: GPUs visible to this process, honouring its
            ``CUDA_VISIBLE_DEVICES``. Empty if ``pynvml`` is missing, NVML
            cannot start (no driver), or no GPU is visible; the reason is
            logged once and kept in :attr:`unavailable_reason`.
        """
        nvml = self._nvml
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError as ex:
                return self._no_gpus(
                    f"the pynvml module cannot be imported ({ex}); install nvidia-ml-py"
                )
        nvml_error = getattr(nvml, "NVMLError", None) or Exception
        try:
            nvml.nvmlInit()
        except (nvml_error, OSError) as ex:
            return self._no_gpus(f"NVML cannot be initialised, is an NVIDIA driver installed? ({ex})")
        try:
            all_devices = self._query_all(nvml)
        except (nvml_error, OSError) as ex:
            return self._no_gpus(f"NVML failed while listing GPUs ({ex})")
        finally:
            try:
                nvml.nvmlShutdown()
            except (nvml_error, OSError):
                pass
        if not all_devices:
            return self._no_gpus("NVML reports no GPU on this machine")
        cvd = os.environ.get(CUDA_VISIBLE_DEVICES)
        if cvd is None:
            visible = all_devices
        else:
            visible = self._select_visible(all_devices, cvd)
            if not visible:
                return self._no_gpus(
                    f"{CUDA_VISIBLE_DEVICES}={cvd!r} leaves none of the "
                    f"{len(all_devices)} GPUs visible"
                )
        self.unavailable_reason = None
        return visible


def _check_gpus_to_use(gpus_to_use: Any) -> list[int] | None:
    if gpus_to_use is None:
        return None
    where = "the gpus_to_use argument of the backend"
    if not isinstance(gpus_to_use, (list, tuple)):
        raise ConfigurationError(
            f"gpus_to_use = {gpus_to_use!r} must be a list of GPU positions "
            f"(non-negative ints) or None for all visible GPUs; fix {where}"
        )
    bad = [g for g in gpus_to_use if isinstance(g, bool) or not isinstance(g, int) or g < 0]
    if bad:
        raise ConfigurationError(
            f"gpus_to_use = {list(gpus_to_use)!r} contains {bad!r}; entries must be "
            f"non-negative ints (positions among the GPUs visible to the tuner); fix {where}"
        )
    duplicates = sorted({g for g in gpus_to_use if list(gpus_to_use).count(g) > 1})
    if duplicates:
        raise ConfigurationError(
            f"gpus_to_use = {list(gpus_to_use)!r} lists {duplicates!r} more than once; "
            f"each GPU may appear once; fix {where}"
        )
    if not gpus_to_use:
        raise ConfigurationError(
            f"gpus_to_use = [] selects no GPU; pass None to use all visible GPUs, or "
            f"num_gpus_per_trial=0 for CPU-only trials; fix {where}"
        )
    return list(gpus_to_use)


class GpuRotationMixin(BackendHooks):
    """Places trials on GPUs and tells them through ``CUDA_VISIBLE_DEVICES``.

    The GPUs are looked up at the first launch, not at construction, so a
    backend built on one machine and unpickled on another places trials on the
    GPUs of the machine that runs them.

    With ``rotate_gpus`` and GPUs present, a new trial gets
    ``num_gpus_per_trial`` distinct GPUs: GPUs not held by a running trial
    first, then those assigned least often so far (counted over all usable
    GPUs and the whole run), then the lowest position. So with more workers
    than GPUs the extra trials spread evenly instead of piling onto one GPU.

    :param rotate_gpus: If ``True``, each trial gets its own share of the GPUs
        as above. If ``False``, every trial sees all usable GPUs. Defaults to
        ``True``
    :param num_gpus_per_trial: Number of GPUs per trial. ``0`` makes trials
        CPU-only (``CUDA_VISIBLE_DEVICES=""``). Larger than the number of
        usable GPUs is reduced to it, with a warning. Defaults to 1
    :param gpus_to_use: Positions, among the GPUs visible to the tuner (see
        the module docstring), of the GPUs trials may use; honoured for any
        number of entries. Defaults to all visible GPUs
    :param gpu_inventory: Object with a ``devices() -> list[GpuDevice]``
        method. Defaults to :class:`NvmlInventory`
    """

    def __init__(
        self,
        *,
        rotate_gpus: bool = True,
        num_gpus_per_trial: int = 1,
        gpus_to_use: list[int] | None = None,
        gpu_inventory: GpuInventory | None = None,
        **kwargs,
    ):
        if not isinstance(rotate_gpus, bool):
            raise ConfigurationError(
                f"rotate_gpus = {rotate_gpus!r} must be True or False; fix the "
                f"rotate_gpus argument of the backend"
            )
        if (
            isinstance(num_gpus_per_trial, bool)
            or not isinstance(num_gpus_per_trial, int)
            or num_gpus_per_trial < 0
        ):
            raise ConfigurationError(
                f"num_gpus_per_trial = {num_gpus_per_trial!r} must be a non-negative "
                f"int (0 for CPU-only trials); fix the num_gpus_per_trial argument "
                f"of the backend"
            )
        if gpu_inventory is not None and not callable(getattr(gpu_inventory, "devices", None)):
            raise ConfigurationError(
                f"gpu_inventory = {gpu_inventory!r} has no devices() method; pass an "
                f"NvmlInventory or None"
            )
        self.rotate_gpus = rotate_gpus
        self.num_gpus_per_trial = num_gpus_per_trial
        self.gpus_to_use = _check_gpus_to_use(gpus_to_use)
        self._gpu_inventory = gpu_inventory if gpu_inventory is not None else NvmlInventory()
        # Filled at the first launch by _gpu_prepare().
        self._gpu_usable: dict[int, GpuDevice] | None = None  # position -> device
        self._gpu_per_trial = num_gpus_per_trial
        self._gpu_times_assigned: dict[int, int] = {}  # position -> launches so far
        self._gpu_held: dict[int, list[int]] = {}  # trial_id -> positions
        super().__init__(**kwargs)

    def _gpu_prepare(self) -> dict[int, GpuDevice]:
        if self._gpu_usable is not None:
            return self._gpu_usable
        visible = list(self._gpu_inventory.devices())
        if self.gpus_to_use is None:
            usable = dict(enumerate(visible))
        else:
            bad = [g for g in self.gpus_to_use if g >= len(visible)]
            if bad:
                if visible:
                    seen = ", ".join(f"{k}: {d.describe()}" for k, d in enumerate(visible))
                    seen = f"the {len(visible)} visible GPUs are positions {seen}"
                else:
                    reason = getattr(self._gpu_inventory, "unavailable_reason", None)
                    seen = "no GPU is visible" + (f" ({reason})" if reason else "")
                raise ConfigurationError(
                    f"gpus_to_use = {self.gpus_to_use} names {bad}, which do not exist: "
                    f"{seen}. Entries are positions among the GPUs visible to the tuner "
                    f"(after its CUDA_VISIBLE_DEVICES); fix the gpus_to_use argument "
                    f"of the backend"
                )
            usable = {g: visible[g] for g in self.gpus_to_use}
        if usable:
            logger.info(
                "Trials may use %d GPU(s): %s",
                len(usable),
                ", ".join(d.describe() for d in usable.values()),
            )
            if self.rotate_gpus and self.num_gpus_per_trial > len(usable):
                logger.warning(
                    f"num_gpus_per_trial = {self.num_gpus_per_trial} is larger than the "
                    f"{len(usable)} usable GPU(s); each trial gets {len(usable)}"
                )
                self._gpu_per_trial = len(usable)
        self._gpu_times_assigned = {g: self._gpu_times_assigned.get(g, 0) for g in usable}
        self._gpu_usable = usable
        return usable

    def _gpu_pick(self, count: int) -> list[int]:
        busy = {g for positions in self._gpu_held.values() for g in positions}
        ranked = sorted(
            self._gpu_usable,
            key=lambda g: (g in busy, self._gpu_times_assigned[g], g),
        )
        return ranked[:count]

    def _trial_environment(self, trial_id: int, config: dict[str, Any]) -> dict[str, str]:
        env = dict(super()._trial_environment(trial_id, config))
        usable = self._gpu_prepare()
        if self.num_gpus_per_trial == 0:
            # CPU-only asked for explicitly: hide GPUs even if none were found.
            env[CUDA_VISIBLE_DEVICES] = ""
            return env
        if not usable:
            return env
        if self.rotate_gpus:
            # A relaunch without an end in between must not hold GPUs twice.
            self._gpu_held.pop(trial_id, None)
            positions = self._gpu_pick(self._gpu_per_trial)
            for g in positions:
                self._gpu_times_assigned[g] += 1
            self._gpu_held[trial_id] = positions
            logger.info(
                "Trial %s runs on GPU(s) %s",
                trial_id,
                ", ".join(usable[g].describe() for g in positions),
            )
        else:
            positions = list(usable)
        env[CUDA_VISIBLE_DEVICES] = ",".join(usable[g].cuda_id for g in positions)
        env[CUDA_DEVICE_ORDER] = "PCI_BUS_ID"
        return env

    def _on_trial_process_end(self, trial_id: int) -> None:
        super()._on_trial_process_end(trial_id)
        self._gpu_held.pop(trial_id, None)

    def trial_gpus(self, trial_id: int) -> list[int]:
        """
        :param trial_id: ID of trial
        :return: Positions (see ``gpus_to_use``) of the GPUs the trial holds
            now; empty if it holds none or rotation is off
        """
        return list(self._gpu_held.get(trial_id, []))
