"""GPU inventory and GPU placement of trials.

Three parts, kept apart on purpose:

* :class:`NvmlInventory` answers *which GPUs does this process see, and what
  is on them*: per GPU its index, UUID, name, memory, utilisation and the
  processes using it. It asks NVML through the ``pynvml`` module (from
  ``nvidia-ml-py``) and honours the tuner's ``CUDA_VISIBLE_DEVICES``. It starts
  no process and writes no file. Anything with a
  ``devices() -> list[GpuDevice]`` method can stand in for it.
* :class:`PlacementRules` says *whether one GPU may take one more trial*, from
  a :class:`GpuState` (what is on the GPU, which of our trials hold it, how
  much memory they booked). It holds the user's placement options and nothing
  else, so a backend that lets a cluster scheduler pick devices never needs it.
* :class:`GpuRotationMixin` decides *which GPUs a trial gets*, makes it wait
  while none qualifies, tells it through ``CUDA_VISIBLE_DEVICES`` and keeps
  the per-trial GPU accounting.

Numbering. The mixin and ``gpus_to_use`` speak of *positions*: position ``k``
is the ``k``-th GPU visible to the tuner, in the order of its
``CUDA_VISIBLE_DEVICES`` (or NVML order when that is unset). Numeric entries
of ``CUDA_VISIBLE_DEVICES`` are read as NVML indices, which follow the PCI bus
order, and every trial is started with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so
that CUDA inside the trial numbers the GPUs the same way.

MIG. A GPU with MIG enabled is not a unit of placement itself: each of its MIG
instances is (CUDA sees the instances, never the parent), so its memory is
never counted twice. Such instances are named by their ``MIG-...`` UUID in a
trial's ``CUDA_VISIBLE_DEVICES``. A CUDA process uses a single MIG instance.

Ours and foreign. A process on a GPU is *ours* if it belongs to the process
tree of one of our running trials (the host tells through
:meth:`~syne_tune_localx.hooks.BackendHooks.trial_process_ids`); every other
process is *foreign*. NVML reports host pids: inside a container with its own
pid namespace our trials' processes cannot be recognised and look foreign.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import math
import os
import re
import time
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from syne_tune_localx.errors import ConfigurationError
from syne_tune_localx.hooks import BackendHooks

logger = logging.getLogger(__name__)

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"
GPU_USAGE_FILE_NAME = "gpu.json"

KIB, MIB, GIB, TIB = 2**10, 2**20, 2**30, 2**40

_INDEX_ENTRY = re.compile(r"[0-9]+")
_OLD_MIG_ENTRY = re.compile(r"MIG-(GPU-[0-9a-fA-F-]+)/([0-9]+)/([0-9]+)")
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_DEVICE_MIG_ENABLE = 1
_NOT_AVAILABLE = 2**64 - 1  # NVML's "value not available" for 64-bit counters


# ----------------------------------------------------------------------
# memory sizes
# ----------------------------------------------------------------------
_SIZE = re.compile(r"\s*((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*")
_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6,
    "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "ki": KIB, "kib": KIB, "mi": MIB, "mib": MIB,
    "gi": GIB, "gib": GIB, "ti": TIB, "tib": TIB,
}  # fmt: skip


def parse_memory_size(value: Any, option: str) -> int | None:
    """Reads a memory size given as bytes or as text with a unit.

    :param value: ``None``, a number of bytes, or a string such as ``"4GiB"``,
        ``"512 MiB"`` or ``"10GB"``: ``KiB``/``MiB``/``GiB``/``TiB`` (also
        ``Ki``...) are powers of 1024, ``KB``/``MB``/``GB``/``TB`` (also
        ``K``...) powers of 1000, as Kubernetes reads them; case does not matter
    :param option: Name of the option, for the error message
    :return: Bytes, or ``None`` if ``value`` is ``None``
    """
    if value is None:
        return None
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match and match.group(2).lower() in _UNITS:
            number = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if number is None or not math.isfinite(number) or number < 0:
        raise ConfigurationError(
            f"{option} = {value!r} is not a memory size: give a number of bytes >= 0 or a "
            f"string such as '4GiB', '512MiB' or '10GB' (KiB/MiB/GiB/TiB are powers of "
            f"1024, KB/MB/GB/TB powers of 1000); fix the {option} argument of the backend"
        )
    return int(number)


def format_bytes(count: int | None) -> str:
    """``12.3 GiB`` (one decimal: steady enough to log once per change), or MiB
    below 0.1 GiB."""
    if count is None:
        return "an unknown amount"
    if abs(count) >= GIB // 10:
        return f"{count / GIB:.1f} GiB"
    return f"{count / MIB:.0f} MiB"


# ----------------------------------------------------------------------
# inventory
# ----------------------------------------------------------------------
@dataclass(frozen=True)
class GpuProcess:
    """A process NVML lists on a GPU.

    :param pid: Process ID (in the host's pid namespace)
    :param memory: GPU memory it uses there, in bytes; ``None`` if NVML
        cannot tell
    :param kind: ``"compute"``, ``"graphics"`` or ``"compute+graphics"``
    """

    pid: int
    memory: int | None
    kind: str = "compute"


@dataclass(frozen=True)
class GpuDevice:
    """One GPU (or one MIG instance) as seen by the tuner process.

    :param index: NVML index (PCI bus order) of the device; for a MIG
        instance, the index of its parent GPU
    :param uuid: NVML UUID, such as ``GPU-5e2c...`` (``MIG-...`` for a MIG
        instance)
    :param name: Product name, such as ``NVIDIA H200``
    :param memory_total: Total device memory, in bytes
    :param memory_used: Device memory in use when queried, in bytes
    :param utilization: GPU utilisation in percent when queried, or ``None``
        if the device does not report it (MIG instances do not)
    :param cuda_id: How to name this device in a child's
        ``CUDA_VISIBLE_DEVICES``: the UUID if the tuner's own
        ``CUDA_VISIBLE_DEVICES`` named it by UUID (and always for a MIG
        instance), else the NVML index
    :param processes: Processes on the device when queried, or ``None`` if
        NVML cannot list them (not supported, no permission)
    :param parent_uuid: For a MIG instance, the UUID of its GPU
    :param mig_instance: For a MIG instance, its GPU instance and compute
        instance IDs
    """

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_used: int
    utilization: int | None = None
    cuda_id: str = ""
    processes: tuple[GpuProcess, ...] | None = None
    parent_uuid: str | None = None
    mig_instance: tuple[int, int] | None = None

    def __post_init__(self):
        if not self.cuda_id:
            object.__setattr__(self, "cuda_id", str(self.index))

    @property
    def is_mig(self) -> bool:
        return self.parent_uuid is not None

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


@dataclass
class _PhysicalGpu:
    index: int
    uuid: str
    units: list[GpuDevice]  # itself, or its MIG instances when MIG is on
    mig: bool


class NvmlInventory:
    """GPUs visible to this process, read from NVML.

    Every call of :meth:`devices` initialises NVML, reads what it needs and
    shuts NVML down again, so no live handle is ever held (the object pickles).
    The placement calls it at most once per poll interval.

    :param nvml: A module-like object with the ``pynvml`` API (``nvmlInit``,
        ``nvmlDeviceGetCount``, ``nvmlDeviceGetHandleByIndex``,
        ``nvmlDeviceGetUUID``, ``nvmlDeviceGetName``,
        ``nvmlDeviceGetMemoryInfo``, ``nvmlShutdown``, ``NVMLError``;
        optionally ``nvmlDeviceGetUtilizationRates``,
        ``nvmlDeviceGetComputeRunningProcesses``,
        ``nvmlDeviceGetGraphicsRunningProcesses``, ``nvmlDeviceGetMigMode``,
        ``nvmlDeviceGetMaxMigDeviceCount``,
        ``nvmlDeviceGetMigDeviceHandleByIndex``). Defaults to ``pynvml``,
        imported when first needed. Tests pass a fake here.
    """

    def __init__(self, nvml: Any = None):
        self._nvml = nvml
        self._told_unavailable = False
        self._told_entries: set[str] = set()
        self._had_gpus = False
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
        if getattr(self, "_had_gpus", False):
            # trials already run on GPUs: a failed reading does not take them away
            self._tell_once(
                logging.WARNING,
                f"NVML gave no GPU in this reading ({reason}); placement keeps the last one",
            )
        elif not self._told_unavailable:
            self._told_unavailable = True
            logger.info(f"No GPU will be used by trials: {reason}")
        return []

    def _tell_once(self, level: int, message: str) -> None:
        # Once per distinct problem: the inventory is asked at every poll.
        if message not in self._told_entries:
            self._told_entries.add(message)
            logger.log(level, message)

    def _warn_entry(self, cvd: str, message: str) -> None:
        self._tell_once(logging.WARNING, f"CUDA_VISIBLE_DEVICES={cvd!r}: {message}")

    # --- one device -----------------------------------------------------------
    def _utilization(self, nvml: Any, handle: Any) -> int | None:
        get_utilization = getattr(nvml, "nvmlDeviceGetUtilizationRates", None)
        if get_utilization is None:
            return None
        nvml_error = getattr(nvml, "NVMLError", None) or OSError
        try:
            return int(get_utilization(handle).gpu)
        except (nvml_error, OSError, AttributeError, TypeError, ValueError):
            return None  # not supported on every device (MIG, vGPU)

    def _processes(self, nvml: Any, handle: Any, uuid: str) -> tuple[GpuProcess, ...] | None:
        """Compute and graphics processes, merged by pid (a process that is in
        both lists uses its memory once); ``None`` if neither list can be read."""
        nvml_error = getattr(nvml, "NVMLError", None) or Exception
        not_supported = getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", _NVML_ERROR_NOT_SUPPORTED)
        found: dict[int, GpuProcess] = {}
        answered = False
        for kind, function in (
            ("compute", "nvmlDeviceGetComputeRunningProcesses"),
            ("graphics", "nvmlDeviceGetGraphicsRunningProcesses"),
        ):
            query = getattr(nvml, function, None)
            if query is None:
                continue
            try:
                listed = query(handle)
            except nvml_error as ex:
                if getattr(ex, "value", None) == not_supported:
                    self._tell_once(
                        logging.INFO,
                        f"GPU {uuid}: NVML cannot list its {kind} processes (not supported); "
                        f"their memory counts as used by processes that are not ours",
                    )
                else:
                    self._tell_once(
                        logging.WARNING,
                        f"GPU {uuid}: NVML failed to list its {kind} processes ({ex}); "
                        f"their memory counts as used by processes that are not ours",
                    )
                continue
            answered = True
            for info in listed or ():
                pid = int(info.pid)
                memory = getattr(info, "usedGpuMemory", None)
                memory = None if memory is None or int(memory) >= _NOT_AVAILABLE else int(memory)
                known = found.get(pid)
                if known is None:
                    found[pid] = GpuProcess(pid=pid, memory=memory, kind=kind)
                else:
                    both = [m for m in (known.memory, memory) if m is not None]
                    found[pid] = GpuProcess(
                        pid=pid, memory=max(both) if both else None, kind="compute+graphics"
                    )
        if not answered:
            return None
        return tuple(found[pid] for pid in sorted(found))

    def _unit(self, nvml: Any, handle: Any, index: int, **extra: Any) -> GpuDevice:
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        return GpuDevice(
            index=index,
            uuid=uuid,
            name=_text(nvml.nvmlDeviceGetName(handle)),
            memory_total=int(memory.total),
            memory_used=int(memory.used),
            utilization=self._utilization(nvml, handle),
            processes=self._processes(nvml, handle, uuid),
            **extra,
        )

    def _mig_units(self, nvml: Any, handle: Any, index: int, uuid: str) -> list[GpuDevice] | None:
        """The MIG instances of a GPU, or ``None`` if MIG is off or unsupported."""
        get_mode = getattr(nvml, "nvmlDeviceGetMigMode", None)
        if get_mode is None:
            return None
        nvml_error = getattr(nvml, "NVMLError", None) or Exception
        try:
            current = get_mode(handle)[0]
        except nvml_error:  # NotSupported: not a MIG-capable GPU
            return None
        if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", _NVML_DEVICE_MIG_ENABLE):
            return None
        units = []
        for slot in range(int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml_error:  # NotFound: no instance in this slot
                continue
            instance = None
            try:
                instance = (
                    int(nvml.nvmlDeviceGetGpuInstanceId(mig)),
                    int(nvml.nvmlDeviceGetComputeInstanceId(mig)),
                )
            except (AttributeError, nvml_error):
                pass
            units.append(self._unit(nvml, mig, index, parent_uuid=uuid, mig_instance=instance))
        # CUDA names a MIG instance only by its UUID
        return [replace(unit, cuda_id=unit.uuid) for unit in units]

    def _query_all(self, nvml: Any) -> list[_PhysicalGpu]:
        gpus = []
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            mig_units = self._mig_units(nvml, handle, index, uuid)
            if mig_units is None:
                gpus.append(_PhysicalGpu(index, uuid, [self._unit(nvml, handle, index)], False))
            else:
                if not mig_units:
                    self._tell_once(
                        logging.WARNING,
                        f"GPU {index} ({uuid}) has MIG enabled but no MIG instance: "
                        f"it can take no trial (create instances with nvidia-smi mig)",
                    )
                gpus.append(_PhysicalGpu(index, uuid, mig_units, True))
        return gpus

    # --- CUDA_VISIBLE_DEVICES -----------------------------------------------
    @staticmethod
    def _named(gpu: _PhysicalGpu, by_uuid: bool) -> list[GpuDevice]:
        if gpu.mig:
            return list(gpu.units)  # already named by their MIG UUIDs
        unit = gpu.units[0]
        return [replace(unit, cuda_id=unit.uuid if by_uuid else str(gpu.index))]

    def _select_visible(self, gpus: list[_PhysicalGpu], cvd: str) -> list[GpuDevice]:
        """Applies ``CUDA_VISIBLE_DEVICES`` the way the CUDA runtime does:
        entries are read left to right and the first one that names no device
        (or a device already named) ends the list. An entry naming a GPU with
        MIG enabled stands for its MIG instances."""
        visible: list[GpuDevice] = []
        seen: set[str] = set()
        migs = [unit for gpu in gpus if gpu.mig for unit in gpu.units]
        for raw in cvd.split(","):
            entry = raw.strip()
            found: list[GpuDevice] | None = None
            problem = ""
            old_mig = _OLD_MIG_ENTRY.fullmatch(entry)
            if _INDEX_ENTRY.fullmatch(entry):
                index = int(entry)
                if index < len(gpus):
                    found = self._named(gpus[index], by_uuid=False)
                else:
                    problem = f"there is no GPU with index {index}"
            elif old_mig:
                # the MIG naming of drivers before R470: MIG-<GPU UUID>/<GI>/<CI>
                parent, gi, ci = old_mig.group(1).lower(), int(old_mig.group(2)), int(old_mig.group(3))
                matches = [
                    m for m in migs
                    if m.parent_uuid.lower() == parent and m.mig_instance == (gi, ci)
                ]  # fmt: skip
                if matches:
                    found = matches[:1]
                else:
                    problem = f"no MIG instance is named {entry!r}"
            elif entry[:4].upper() == "GPU-":
                prefix = entry.lower()
                matches = [g for g in gpus if g.uuid.lower().startswith(prefix)]
                if len(matches) == 1:
                    found = self._named(matches[0], by_uuid=True)
                elif matches:
                    problem = f"{entry!r} matches more than one GPU"
                else:
                    problem = f"no GPU has a UUID starting with {entry!r}"
            elif entry[:4].upper() == "MIG-":
                prefix = entry.lower()
                matches = [m for m in migs if m.uuid.lower().startswith(prefix)]
                if len(matches) == 1:
                    found = matches
                elif matches:
                    problem = f"{entry!r} matches more than one MIG instance"
                else:
                    problem = f"no MIG instance has a UUID starting with {entry!r}"
            else:
                problem = f"{entry!r} is neither a GPU index, a GPU UUID nor a MIG UUID"
            if found is not None and any(unit.uuid in seen for unit in found):
                found, problem = None, f"{entry!r} names a GPU already listed"
            if found is None:
                self._warn_entry(cvd, f"{problem}; CUDA ignores this entry and all after it")
                break
            seen.update(unit.uuid for unit in found)
            visible.extend(found)
        return visible

    def devices(self) -> list[GpuDevice]:
        """
        :return: GPUs (and MIG instances) visible to this process, honouring
            its ``CUDA_VISIBLE_DEVICES``, with their memory, utilisation and
            processes. Empty if ``pynvml`` is missing, NVML cannot start (no
            driver), or no GPU is visible; the reason is logged once and kept
            in :attr:`unavailable_reason`.
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
            gpus = self._query_all(nvml)
        except (nvml_error, OSError) as ex:
            return self._no_gpus(f"NVML failed while listing GPUs ({ex})")
        finally:
            try:
                nvml.nvmlShutdown()
            except (nvml_error, OSError):
                pass
        if not gpus:
            return self._no_gpus("NVML reports no GPU on this machine")
        cvd = os.environ.get(CUDA_VISIBLE_DEVICES)
        if cvd is None:
            visible = [unit for gpu in gpus for unit in self._named(gpu, by_uuid=False)]
        else:
            visible = self._select_visible(gpus, cvd)
        if not visible:
            if cvd is not None:
                return self._no_gpus(
                    f"{CUDA_VISIBLE_DEVICES}={cvd!r} leaves none of the {len(gpus)} GPUs visible"
                )
            return self._no_gpus(f"none of the {len(gpus)} GPUs has a usable MIG instance")
        self.unavailable_reason = None
        self._had_gpus = True
        return visible


# ----------------------------------------------------------------------
# placement rules
# ----------------------------------------------------------------------
@dataclass
class GpuState:
    """What is on one usable GPU, as placement sees it.

    :param position: Position among the GPUs visible to the tuner
    :param device: The latest NVML reading of the GPU
    :param trials: Our trials placed on it (holding it until their process is
        gone), oldest first
    :param trial_memory: Memory the processes of each of our running trials
        use on it, from the latest reading
    :param booked: For each trial holding it, the part of its memory request
        that NVML does not show yet (``gpu_memory_per_trial`` minus what its
        processes use there, if positive)
    :param foreign: Processes on it that are not ours
    """

    position: int
    device: GpuDevice
    trials: list[int] = field(default_factory=list)
    trial_memory: dict[int, int] = field(default_factory=dict)
    booked: dict[int, int] = field(default_factory=dict)
    foreign: list[GpuProcess] = field(default_factory=list)

    @property
    def free(self) -> int:
        """Free memory once the outstanding bookings are taken. NVML's used
        memory already holds what our trials really use, so each trial counts
        once: the larger of its request and its real use."""
        device = self.device
        return max(0, device.memory_total - device.memory_used - sum(self.booked.values()))

    def memory_story(self, needed: int) -> str:
        """Who holds the memory, for a GPU with less than ``needed`` free."""
        parts = []
        foreign = sorted(self.foreign, key=lambda p: (-(p.memory or 0), p.pid))
        if len(foreign) == 1:
            process = foreign[0]
            parts.append(f"{format_bytes(process.memory)} used by a foreign process (pid {process.pid})")
        elif foreign:
            total = sum(p.memory or 0 for p in foreign)
            pids = ", ".join(str(p.pid) for p in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            parts.append(f"{format_bytes(total)} used by {len(foreign)} foreign processes (pids {pids})")
        if self.device.processes is None:
            parts.append(
                f"{format_bytes(self.device.memory_used)} used (NVML cannot list the processes)"
            )
        for trial_id in sorted(set(self.booked) | set(self.trial_memory)):
            used = self.trial_memory.get(trial_id, 0)
            if self.booked.get(trial_id):
                parts.append(f"{format_bytes(used + self.booked[trial_id])} booked by trial {trial_id}")
            elif used:
                parts.append(f"{format_bytes(used)} used by trial {trial_id}")
        parts.append(f"{format_bytes(self.free)} free, needs {format_bytes(needed)}")
        return ", ".join(parts)


def _check_optional_number(value: Any, option: str, low: float, high: float, what: str):
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ConfigurationError(
            f"{option} = {value!r} must be {what}, or None to switch it off; fix the "
            f"{option} argument of the backend"
        )
    return value


@dataclass(frozen=True)
class PlacementRules:
    """The placement options; all off (``None``) by default, which gives the
    seed's rotation. Build it with :meth:`from_options` to validate.

    :param trials_per_gpu: How many of our trials may hold one GPU at once;
        ``None``: no limit, trials share GPUs when all are taken
    :param memory_per_trial: Bytes a trial needs on each of its GPUs, booked
        from its launch until its own processes use that much there
    :param min_free_memory: Bytes a GPU must have free to take a trial
    :param max_utilization: Percent; a GPU none of our trials holds is too busy
        above it (NVML measures the whole GPU and cannot tell our share, so
        sharing among our trials is ruled by ``trials_per_gpu`` instead)
    """

    trials_per_gpu: int | None = None
    memory_per_trial: int | None = None
    min_free_memory: int | None = None
    max_utilization: float | None = None

    @classmethod
    def from_options(
        cls,
        trials_per_gpu: Any = None,
        gpu_memory_per_trial: Any = None,
        gpu_min_free_memory: Any = None,
        gpu_max_utilization: Any = None,
    ) -> PlacementRules:
        if trials_per_gpu is not None and (
            isinstance(trials_per_gpu, bool)
            or not isinstance(trials_per_gpu, int)
            or trials_per_gpu < 1
        ):
            raise ConfigurationError(
                f"trials_per_gpu = {trials_per_gpu!r} must be a positive int (how many "
                f"trials may share one GPU; 1 gives each trial GPUs of its own), or None "
                f"for no limit; fix the trials_per_gpu argument of the backend"
            )
        return cls(
            trials_per_gpu=trials_per_gpu,
            memory_per_trial=parse_memory_size(gpu_memory_per_trial, "gpu_memory_per_trial"),
            min_free_memory=parse_memory_size(gpu_min_free_memory, "gpu_min_free_memory"),
            max_utilization=_check_optional_number(
                gpu_max_utilization, "gpu_max_utilization", 0, 100, "a percentage from 0 to 100"
            ),
        )

    @property
    def memory_needed(self) -> int:
        """Free bytes a GPU needs to take one more trial."""
        return max(self.min_free_memory or 0, self.memory_per_trial or 0)

    @property
    def needs_readings(self) -> bool:
        """Whether placement depends on what NVML reads (memory, utilisation)."""
        return bool(self.memory_needed) or self.max_utilization is not None

    @property
    def active(self) -> bool:
        """Whether any rule can make a trial wait."""
        return self.needs_readings or self.trials_per_gpu is not None

    def objection(self, gpu: GpuState) -> str | None:
        """
        :param gpu: The GPU as it is now
        :return: Why it cannot take one more trial, or ``None`` if it can
        """
        reasons = []
        limit = self.trials_per_gpu
        if limit is not None and len(gpu.trials) >= limit:
            if limit == 1 and len(gpu.trials) == 1:
                reasons.append(f"in use by trial {gpu.trials[0]}")
            else:
                trials = ", ".join(str(t) for t in gpu.trials)
                reasons.append(f"in use by trials {trials} (trials_per_gpu = {limit})")
        needed = self.memory_needed
        if needed and gpu.free < needed:
            reasons.append(gpu.memory_story(needed))
        utilization = gpu.device.utilization
        if (
            self.max_utilization is not None
            and not gpu.trials
            and utilization is not None
            and utilization > self.max_utilization
        ):
            # in steps of 10 so that the reason, logged once per change, stays put
            # while the utilisation jitters
            reasons.append(
                f"too busy: {utilization // 10 * 10}%+ utilisation "
                f"(gpu_max_utilization = {self.max_utilization:g})"
            )
        return ", ".join(reasons) if reasons else None


# ----------------------------------------------------------------------
# the mixin
# ----------------------------------------------------------------------
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


def _label(position: int, device: GpuDevice) -> str:
    if device.cuda_id == str(position):
        return f"GPU {position}"
    return f"GPU {position} ({device.cuda_id})"


class GpuRotationMixin(BackendHooks):
    """Places trials on GPUs and tells them through ``CUDA_VISIBLE_DEVICES``.

    The GPUs are looked up at the first launch, not at construction, so a
    backend built on one machine and unpickled on another places trials on the
    GPUs of the machine that runs them.

    With ``rotate_gpus`` and GPUs present, a new trial gets
    ``num_gpus_per_trial`` distinct GPUs among those that qualify: GPUs not
    held by a running trial first, then those assigned least often so far
    (counted over all usable GPUs and the whole run), then (with a memory
    option) the one with most free memory, then the lowest position. With no
    placement option every usable GPU qualifies, so with more workers than
    GPUs the extra trials share GPUs evenly instead of piling onto one. A
    trial holds its GPUs until its process is really gone, not merely asked
    to stop.

    Placement options (all off by default) make a GPU qualify only if it has
    room; when fewer GPUs qualify than the trial needs, the trial **waits**
    (:meth:`_trial_wait_reason`): the host accepts it, counts it as busy,
    logs the reason, per GPU, once per change, and starts it at the first
    poll where enough GPUs qualify. :meth:`gpu_placement_report` tells the
    same per GPU at any time. Memory of processes that are not ours counts
    against a GPU; memory of our own trials counts once.

    Each trial's GPU use is sampled at the host's polls (at most one NVML
    query per ``gpu_poll_interval``): the GPUs it ran on and its peak memory
    summed over its process tree, in ``<trial folder>/gpu.json`` and from
    :meth:`trial_gpu_usage`.

    :param rotate_gpus: If ``True``, each trial gets its own share of the GPUs
        as above. If ``False``, every trial sees all usable GPUs (and the
        placement options cannot be used). Defaults to ``True``
    :param num_gpus_per_trial: Number of GPUs per trial. ``0`` makes trials
        CPU-only: they see no GPU (``CUDA_VISIBLE_DEVICES=""``) and never wait
        for one. Larger than the number of usable GPUs is reduced to it, with
        a warning. Defaults to 1
    :param gpus_to_use: Positions, among the GPUs visible to the tuner (see
        the module docstring), of the GPUs trials may use; honoured for any
        number of entries. Defaults to all visible GPUs
    :param gpu_inventory: Object with a ``devices() -> list[GpuDevice]``
        method. Defaults to :class:`NvmlInventory`
    :param trials_per_gpu: How many trials may hold one GPU at the same time;
        when every GPU has that many, new trials wait instead of sharing. ``1``
        gives each trial GPUs of its own. Defaults to ``None``: no limit, trials
        share GPUs when all are taken (the seed's behaviour)
    :param gpu_memory_per_trial: Memory a trial needs on each of its GPUs, in
        bytes or as a string such as ``"10GiB"``: a GPU qualifies only with that
        much free, and the amount is booked from the launch on, so trials
        started in the same poll do not pick the same GPU before their
        memory shows in NVML. A trial then counts as the larger of its
        request and its real use. Defaults to ``None``
    :param gpu_min_free_memory: Free memory a GPU must have to take a trial,
        bytes or a string such as ``"4GiB"``. Defaults to ``None``
    :param gpu_max_utilization: A GPU that none of our trials holds is skipped
        while its utilisation (in percent) is above this. Defaults to ``None``
    :param gpu_poll_interval: Seconds between two NVML readings for placement
        and accounting. Defaults to 1
    """

    def __init__(
        self,
        *,
        rotate_gpus: bool = True,
        num_gpus_per_trial: int = 1,
        gpus_to_use: list[int] | None = None,
        gpu_inventory: GpuInventory | None = None,
        trials_per_gpu: int | None = None,
        gpu_memory_per_trial: int | str | None = None,
        gpu_min_free_memory: int | str | None = None,
        gpu_max_utilization: float | None = None,
        gpu_poll_interval: float = 1.0,
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
        rules = PlacementRules.from_options(
            trials_per_gpu=trials_per_gpu,
            gpu_memory_per_trial=gpu_memory_per_trial,
            gpu_min_free_memory=gpu_min_free_memory,
            gpu_max_utilization=gpu_max_utilization,
        )
        if rules.active and not rotate_gpus:
            raise ConfigurationError(
                "trials_per_gpu, gpu_memory_per_trial, gpu_min_free_memory and "
                "gpu_max_utilization choose GPUs for each trial and need rotate_gpus=True "
                "(with rotate_gpus=False every trial sees all GPUs); fix the backend's "
                "arguments"
            )
        self.rotate_gpus = rotate_gpus
        self.num_gpus_per_trial = num_gpus_per_trial
        self.gpus_to_use = _check_gpus_to_use(gpus_to_use)
        self.gpu_poll_interval = _check_optional_number(
            gpu_poll_interval, "gpu_poll_interval", 0, math.inf, "a number of seconds >= 0"
        )
        if self.gpu_poll_interval is None:
            self.gpu_poll_interval = 1.0
        self._gpu_rules = rules
        self._gpu_inventory = gpu_inventory if gpu_inventory is not None else NvmlInventory()
        # Filled at the first launch by _gpu_prepare().
        self._gpu_visible: list[GpuDevice] = []
        self._gpu_usable: dict[int, GpuDevice] | None = None  # position -> device
        self._gpu_per_trial = num_gpus_per_trial
        self._gpu_times_assigned: dict[int, int] = {}  # position -> launches so far
        self._gpu_held: dict[int, list[int]] = {}  # trial_id -> positions
        # The latest NVML reading, and what of it is ours. Wall-clock time, so
        # that it still means something after the backend is unpickled.
        self._gpu_readings: dict[int, GpuDevice] = {}  # position -> device
        self._gpu_read_at: float | None = None
        self._gpu_reread = False  # a trial ended: read before placing again
        self._gpu_trial_memory: dict[int, dict[int, int]] = {}  # position -> {trial: bytes}
        self._gpu_foreign: dict[int, list[GpuProcess]] = {}  # position -> processes
        self._gpu_owner: dict[int, int] = {}  # pid -> trial_id, of running trials
        # Accounting: trials whose process may run on GPUs, and their records.
        self._gpu_running: dict[int, list[int]] = {}  # trial_id -> positions given
        self._gpu_usage: dict[int, dict[str, Any]] = {}  # trial_id -> record
        self._gpu_write_failed = False
        super().__init__(**kwargs)

    # --- the GPUs ---------------------------------------------------------
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
        needed = self._gpu_rules.memory_needed
        if usable and self.num_gpus_per_trial > 0 and needed:
            largest = max(usable, key=lambda g: usable[g].memory_total)
            if usable[largest].memory_total < needed:
                raise ConfigurationError(
                    f"trials need {format_bytes(needed)} free on a GPU (gpu_memory_per_trial / "
                    f"gpu_min_free_memory), more than any usable GPU has (the largest, "
                    f"{_label(largest, usable[largest])}, has "
                    f"{format_bytes(usable[largest].memory_total)}): no trial could ever "
                    f"start. Lower these arguments of the backend"
                )
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
            if self._gpu_per_trial > 1 and any(d.is_mig for d in usable.values()):
                logger.warning(
                    f"num_gpus_per_trial = {self.num_gpus_per_trial} with MIG instances: "
                    f"a CUDA process uses only the first MIG instance it is given"
                )
        self._gpu_times_assigned = {g: self._gpu_times_assigned.get(g, 0) for g in usable}
        self._gpu_visible = visible
        self._gpu_usable = usable
        self._gpu_readings = dict(usable)
        self._gpu_read_at = time.time()
        self._gpu_attribute()
        return usable

    def _gpu_refresh(self) -> None:
        """Reads NVML again if the last reading is older than the poll
        interval, or a trial ended since."""
        if not self._gpu_usable:
            return
        now = time.time()
        last = self._gpu_read_at
        if not self._gpu_reread and last is not None and 0 <= now - last < self.gpu_poll_interval:
            return
        self._gpu_read_at = now
        self._gpu_reread = False
        readings = {d.uuid: d for d in self._gpu_inventory.devices()}
        for position, known in self._gpu_usable.items():
            reading = readings.get(known.uuid)
            # a GPU missing from this reading (NVML failed; the inventory said
            # why) keeps its last one
            if reading is not None:
                self._gpu_readings[position] = replace(reading, cuda_id=known.cuda_id)
        self._gpu_attribute()
        self._gpu_account()

    def _gpu_attribute(self) -> None:
        """Splits the processes of the latest reading into ours and foreign."""
        owner: dict[int, int] = {}
        for trial_id in self._gpu_running:
            for pid in self.trial_process_ids(trial_id):
                owner.setdefault(pid, trial_id)
        # A process that exits between the NVML reading and the look at the
        # process table is still in the reading but no longer in its trial's
        # tree: a pid once seen in a running trial stays that trial's.
        for pid, trial_id in self._gpu_owner.items():
            if trial_id in self._gpu_running:
                owner.setdefault(pid, trial_id)
        self._gpu_owner = owner
        self._gpu_trial_memory, self._gpu_foreign = {}, {}
        for position, device in self._gpu_readings.items():
            ours: dict[int, int] = {}
            foreign = []
            for process in device.processes or ():
                trial_id = owner.get(process.pid)
                if trial_id is None:
                    foreign.append(process)
                else:
                    ours[trial_id] = ours.get(trial_id, 0) + (process.memory or 0)
            self._gpu_trial_memory[position] = ours
            self._gpu_foreign[position] = foreign

    def _gpu_states(self, exclude: int | None = None) -> dict[int, GpuState]:
        """Every usable GPU as placement sees it; ``exclude`` is left out of
        the holders (a trial being relaunched)."""
        states = {
            position: GpuState(
                position=position,
                device=self._gpu_readings.get(position, device),
                trial_memory=dict(self._gpu_trial_memory.get(position, {})),
                foreign=list(self._gpu_foreign.get(position, [])),
            )
            for position, device in (self._gpu_usable or {}).items()
        }
        request = self._gpu_rules.memory_per_trial or 0
        for trial_id in sorted(self._gpu_held):
            if trial_id == exclude:
                continue
            for position in self._gpu_held[trial_id]:
                state = states[position]
                state.trials.append(trial_id)
                outstanding = request - state.trial_memory.get(trial_id, 0)
                if outstanding > 0:
                    state.booked[trial_id] = outstanding
        return states

    def _gpu_choose(
        self, trial_id: int, rules: PlacementRules | None = None
    ) -> tuple[list[int] | None, str | None]:
        """
        :return: The positions for the trial and ``None``, or ``None`` and why
            not enough GPUs qualify
        """
        rules = rules if rules is not None else self._gpu_rules
        states = self._gpu_states(exclude=trial_id)
        count = self._gpu_per_trial
        by_memory = bool(rules.memory_needed)
        fit = [s for s in states.values() if rules.objection(s) is None]
        fit.sort(
            key=lambda s: (
                bool(s.trials),
                self._gpu_times_assigned[s.position],
                -s.free if by_memory else 0,
                s.position,
            )
        )
        if len(fit) >= count:
            return [s.position for s in fit[:count]], None
        if fit:
            labels = ", ".join(_label(s.position, s.device) for s in fit)
            head = f"it needs {count} GPUs and only {len(fit)} can take it ({labels})"
        else:
            head = "no GPU can take it"
        details = []
        for position, device in enumerate(self._gpu_visible):
            state = states.get(position)
            if state is None:
                details.append(f"{_label(position, device)}: excluded by gpus_to_use")
                continue
            objection = rules.objection(state)
            if objection is not None:
                details.append(f"{_label(position, state.device)}: {objection}")
        return None, f"{head}: " + "; ".join(details)

    # --- hooks --------------------------------------------------------------
    def _trial_wait_reason(self, trial_id: int, config: dict[str, Any]) -> str | None:
        reason = super()._trial_wait_reason(trial_id, config)
        if reason is not None:
            return reason
        if not self._gpu_rules.active or not self.rotate_gpus or self.num_gpus_per_trial == 0:
            return None
        if not self._gpu_prepare():
            return None
        if self._gpu_rules.needs_readings:
            self._gpu_refresh()
        return self._gpu_choose(trial_id)[1]

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
            positions, reason = self._gpu_choose(trial_id)
            if positions is None:
                logger.warning(
                    f"trial {trial_id} is launched although {reason} (the host did not "
                    f"ask _trial_wait_reason first); it shares the least used GPUs"
                )
                positions, _ = self._gpu_choose(trial_id, rules=PlacementRules())
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
        self._gpu_begin_accounting(trial_id, positions, env[CUDA_VISIBLE_DEVICES])
        return env

    def _on_poll(self) -> None:
        super()._on_poll()
        if self._gpu_running:
            self._gpu_refresh()

    def _on_trial_process_end(self, trial_id: int) -> None:
        super()._on_trial_process_end(trial_id)
        self._gpu_held.pop(trial_id, None)
        if self._gpu_running.pop(trial_id, None) is not None:
            self._gpu_write_usage(trial_id)
            if self._gpu_rules.needs_readings:
                # its memory is gone from NVML only now; read before placing again
                self._gpu_reread = True

    # --- accounting -----------------------------------------------------------
    def _gpu_entry(self, record: dict[str, Any], position: int) -> dict[str, Any]:
        device = self._gpu_usable[position]
        for entry in record["gpus"]:
            if entry["uuid"] == device.uuid:
                return entry
        entry = {
            "position": position,
            "cuda_id": device.cuda_id,
            "uuid": device.uuid,
            "name": device.name,
            "index": device.index,
            "peak_memory_bytes": 0,
        }
        record["gpus"].append(entry)
        return entry

    def _gpu_begin_accounting(self, trial_id: int, positions: list[int], cvd: str) -> None:
        self._gpu_running[trial_id] = list(positions)
        record = self._gpu_usage.setdefault(
            trial_id,
            {
                "trial_id": trial_id,
                "gpus": [],
                "peak_memory_bytes": 0,
                "memory_request_bytes": self._gpu_rules.memory_per_trial,
                "samples": 0,
            },
        )
        record["cuda_visible_devices"] = cvd
        for position in positions:
            self._gpu_entry(record, position)
        self._gpu_write_usage(trial_id)

    def _gpu_account(self) -> None:
        """Adds the latest reading to the records of the running trials."""
        for trial_id in self._gpu_running:
            record = self._gpu_usage[trial_id]
            record["samples"] += 1
            changed = False
            total = 0
            for position, ours in self._gpu_trial_memory.items():
                used = ours.get(trial_id)
                if used is None:
                    continue
                total += used
                entry = self._gpu_entry(record, position)  # may be one it was not given
                if used > entry["peak_memory_bytes"]:
                    entry["peak_memory_bytes"] = used
                    changed = True
            if total > record["peak_memory_bytes"]:
                record["peak_memory_bytes"] = total
                changed = True
            if changed:
                self._gpu_write_usage(trial_id)

    def _gpu_write_usage(self, trial_id: int) -> None:
        trial_path = getattr(self, "trial_path", None)
        record = self._gpu_usage.get(trial_id)
        if trial_path is None or record is None:
            return
        path = Path(trial_path(trial_id)) / GPU_USAGE_FILE_NAME
        try:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(record, indent=1))
            os.replace(tmp, path)
        except OSError as err:
            if not self._gpu_write_failed:
                self._gpu_write_failed = True
                logger.warning(f"cannot write the GPU usage of trial {trial_id} to {path}: {err}")

    # --- public ---------------------------------------------------------------
    def trial_gpus(self, trial_id: int) -> list[int]:
        """
        :param trial_id: ID of trial
        :return: Positions (see ``gpus_to_use``) of the GPUs the trial holds
            now; empty if it holds none or rotation is off
        """
        return list(self._gpu_held.get(trial_id, []))

    def trial_gpu_usage(self, trial_id: int) -> dict[str, Any] | None:
        """What a trial used of the GPUs, over all its launches; also in
        ``<trial folder>/gpu.json``.

        :param trial_id: ID of trial
        :return: ``None`` for a trial that was given no GPU, else a dict with
            ``gpus`` (one dict per GPU it was given or ran on: ``position``,
            ``cuda_id``, ``uuid``, ``name``, ``index`` and
            ``peak_memory_bytes``, the peak of its processes' memory there),
            ``peak_memory_bytes`` (peak over time of the memory of all its
            processes on all GPUs), ``memory_request_bytes``,
            ``cuda_visible_devices`` of its latest launch, and ``samples``
            (NVML readings taken while it ran; the peaks are as good as these)
        """
        record = self._gpu_usage.get(trial_id)
        return copy.deepcopy(record) if record is not None else None

    def gpu_placement_report(self) -> list[dict[str, Any]]:
        """Every GPU visible to the tuner as placement sees it now (reading
        NVML if the last reading is older than ``gpu_poll_interval``).

        :return: One dict per GPU, by position: ``position``, ``gpu`` (the
            label used in wait reasons), ``uuid``, ``name``, ``memory_total``,
            ``memory_used``, ``memory_free`` (after bookings),
            ``utilization``, ``trials`` (ours holding it), ``booked``
            (``{trial_id: bytes}`` not yet seen in NVML), ``trial_memory``
            (``{trial_id: bytes}`` seen), ``foreign_processes``
            (``[{"pid", "memory"}]``), and ``reason``: why it cannot take
            a trial now, or ``None`` if it can
        """
        usable = self._gpu_prepare()
        if self._gpu_rules.needs_readings or self._gpu_running:
            self._gpu_refresh()
        states = self._gpu_states()
        report = []
        for position, device in enumerate(self._gpu_visible):
            state = states.get(position)
            entry: dict[str, Any] = {"position": position, "gpu": _label(position, device)}
            if state is None or position not in usable:
                entry.update(
                    uuid=device.uuid, name=device.name, memory_total=device.memory_total,
                    memory_used=device.memory_used, memory_free=None,
                    utilization=device.utilization, trials=[], booked={}, trial_memory={},
                    foreign_processes=[], reason="excluded by gpus_to_use",
                )  # fmt: skip
            else:
                reading = state.device
                entry.update(
                    uuid=reading.uuid, name=reading.name, memory_total=reading.memory_total,
                    memory_used=reading.memory_used, memory_free=state.free,
                    utilization=reading.utilization, trials=list(state.trials),
                    booked=dict(state.booked), trial_memory=dict(state.trial_memory),
                    foreign_processes=[{"pid": p.pid, "memory": p.memory} for p in state.foreign],
                    reason=self._gpu_rules.objection(state),
                )  # fmt: skip
            report.append(entry)
        return report
