"""A stand-in for the ``pynvml`` module, for tests without a GPU.

``FakeNvml(4)`` behaves like ``pynvml`` on a machine with four GPUs: the same
function names, handles from ``nvmlDeviceGetHandleByIndex``, an ``NVMLError``
class (with ``NVMLError_NotSupported`` and ``NVMLError_NotFound`` subclasses,
as ``pynvml`` generates them), and calls before ``nvmlInit`` fail as NVML's
do. It counts ``nvmlInit`` and ``nvmlShutdown`` calls so tests can check they
are paired (and how often NVML was queried). Instances are plain objects and
pickle (with dill or pickle) as long as this module is importable.

What a device reports, and how tests change it over time:

* ``FakeDevice.processes``: processes NVML lists on the device (a foreign
  training job, a display server). A test may change the list at any time;
  they are reported whether or not the pid exists.
* ``FakeNvml(process_dir=...)``: a folder where *real* processes announce GPU
  memory, one JSON file each (see :func:`register_process`). Such a process
  is reported only while its pid is alive (not a zombie), so its memory goes
  away when the process does, as with a real driver. Trial scripts in the
  end-to-end tests use it to "allocate" GPU memory.
* A device's reported used memory is ``memory_used`` (what the driver and
  unlisted contexts take) plus the memory of the processes on it.
* ``FakeDevice.mig``: ``None`` for a GPU without MIG support (``nvmlDeviceGetMigMode``
  raises ``NVMLError_NotSupported``), ``[]`` for a MIG-capable GPU with MIG off,
  or the list of its MIG instances (``FakeDevice`` each, ``None`` for an empty
  slot) when MIG is on. MIG handles come from
  ``nvmlDeviceGetMigDeviceHandleByIndex`` and answer the same queries, except
  utilisation (not supported on MIG instances, as on real hardware).
"""

import json
import os
from dataclasses import dataclass, field

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12

NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

GIB = 2**30
MIB = 2**20


class NVMLError(Exception):
    """Same shape as ``pynvml.NVMLError``: carries the NVML return code."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return f"fake NVML error {self.value}"


class NVMLError_NotSupported(NVMLError):  # pynvml's name
    def __init__(self, value: int = NVML_ERROR_NOT_SUPPORTED):
        super().__init__(value)


class NVMLError_NotFound(NVMLError):  # pynvml's name
    def __init__(self, value: int = NVML_ERROR_NOT_FOUND):
        super().__init__(value)


@dataclass
class FakeProcess:
    """A process NVML lists on a device.

    :param pid: Process ID as NVML reports it
    :param memory: GPU memory it uses, in bytes; ``None`` when NVML cannot tell
    :param kind: ``"compute"``, ``"graphics"`` or ``"both"`` (which of the two
        process lists show it)
    """

    pid: int
    memory: int | None = GIB
    kind: str = "compute"


@dataclass
class FakeDevice:
    uuid: str
    name: str = "Fake GPU"
    memory_total: int = 80 * GIB
    memory_used: int = MIB
    utilization: int | None = 0  # None: device does not support the query
    processes: list = field(default_factory=list)  # FakeProcess
    processes_supported: bool = True  # False: process queries raise NotSupported
    mig: list | None = None  # see the module docstring
    max_mig_devices: int = 7
    gpu_instance_id: int = 0  # MIG instances only
    compute_instance_id: int = 0  # MIG instances only


@dataclass
class _Memory:
    total: int
    used: int
    free: int


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass
class _ProcessInfo:
    # the fields pynvml's friendly process objects have
    pid: int
    usedGpuMemory: int | None  # pynvml's name
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass(frozen=True)
class _Handle:
    index: int
    mig: int | None = None  # slot of a MIG instance on GPU ``index``


def fake_uuid(index: int) -> str:
    """A UUID in NVML's format, distinct per index and with a distinct prefix."""
    return f"GPU-{index:08x}-1111-2222-3333-{index:012x}"


def fake_mig_uuid(index: int, slot: int) -> str:
    """A MIG instance UUID in the format of drivers since R470."""
    return f"MIG-{index:04x}{slot:04x}-aaaa-bbbb-cccc-{index:06x}{slot:06x}"


def mig_instances(index: int, count: int, memory_each: int = 10 * GIB) -> list:
    """``count`` MIG instances for the GPU at ``index``, named like ``1g.10gb``."""
    return [
        FakeDevice(
            uuid=fake_mig_uuid(index, slot),
            name=f"Fake GPU MIG 1g.{memory_each // GIB}gb",
            memory_total=memory_each,
            utilization=None,
            gpu_instance_id=slot + 1,
            compute_instance_id=0,
        )
        for slot in range(count)
    ]


def register_process(process_dir, pid: int, device: str, memory: int) -> None:
    """Announce that the live process ``pid`` uses ``memory`` bytes on ``device``.

    :param process_dir: The ``process_dir`` of the :class:`FakeNvml`
    :param device: How CUDA would name the device: an NVML index (``"1"``), a
        GPU UUID or a MIG UUID (a prefix is enough), e.g. an entry of the
        process's ``CUDA_VISIBLE_DEVICES``
    :param memory: Bytes; registering the same pid again replaces the entry
    """
    path = os.path.join(str(process_dir), f"{pid}.json")
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"pid": pid, "device": device, "memory": int(memory)}, f)
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


@dataclass
class FakeNvml:
    """Module-like fake of ``pynvml``.

    :param devices: Either a number of identical GPUs or a list of
        :class:`FakeDevice`
    :param init_error: If set, ``nvmlInit`` raises ``NVMLError(init_error)``
        (``NVML_ERROR_LIBRARY_NOT_FOUND`` is what a machine without driver gives)
    :param bytes_strings: Return names and UUIDs as bytes, like old releases
    :param process_dir: Folder where live processes announce GPU memory
        (:func:`register_process`); ``None`` for none
    """

    devices: list = field(default_factory=list)
    init_error: int | None = None
    bytes_strings: bool = False
    process_dir: str | None = None
    init_calls: int = 0
    shutdown_calls: int = 0
    _initialised: int = 0

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __post_init__(self):
        if isinstance(self.devices, int):
            self.devices = [FakeDevice(uuid=fake_uuid(i)) for i in range(self.devices)]
        if self.process_dir is not None:
            self.process_dir = str(self.process_dir)

    # --- helpers ----------------------------------------------------------
    def _check(self):
        if self._initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _str(self, text: str):
        return text.encode() if self.bytes_strings else text

    def _device(self, handle) -> FakeDevice:
        self._check()
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.devices):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        device = self.devices[handle.index]
        if handle.mig is None:
            return device
        instance = (device.mig or [None] * (handle.mig + 1))[handle.mig]
        if instance is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return instance

    def _resolve(self, name: str) -> _Handle | None:
        """The handle CUDA would pick for ``name`` (index, GPU or MIG UUID)."""
        name = name.strip()
        if name.isdigit():
            index = int(name)
            return _Handle(index) if index < len(self.devices) else None
        for index, device in enumerate(self.devices):
            if device.uuid.lower().startswith(name.lower()):
                return _Handle(index)
            for slot, instance in enumerate(device.mig or []):
                if instance is not None and instance.uuid.lower().startswith(name.lower()):
                    return _Handle(index, slot)
        return None

    def _registered(self, handle: _Handle) -> list:
        if self.process_dir is None:
            return []
        found = []
        try:
            names = sorted(os.listdir(self.process_dir))
        except FileNotFoundError:
            return []
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.process_dir, name)) as f:
                    entry = json.load(f)
            except (OSError, ValueError):
                continue  # being written
            if self._resolve(str(entry["device"])) == handle and _alive(int(entry["pid"])):
                found.append(FakeProcess(pid=int(entry["pid"]), memory=int(entry["memory"])))
        return found

    def _processes(self, handle) -> list:
        return list(self._device(handle).processes) + self._registered(handle)

    def _listed(self, handle, kinds) -> list:
        device = self._device(handle)
        if not device.processes_supported:
            raise NVMLError_NotSupported()
        return [
            _ProcessInfo(pid=p.pid, usedGpuMemory=p.memory)
            for p in self._processes(handle)
            if p.kind in kinds
        ]

    # --- the pynvml API -----------------------------------------------------
    def nvmlInit(self):
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self._initialised += 1

    def nvmlShutdown(self):
        self._check()
        self.shutdown_calls += 1
        self._initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int):
        self._check()
        if not 0 <= index < len(self.devices):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetUUID(self, handle):
        return self._str(self._device(handle).uuid)

    def nvmlDeviceGetName(self, handle):
        return self._str(self._device(handle).name)

    def nvmlDeviceGetMemoryInfo(self, handle):
        device = self._device(handle)
        used = device.memory_used + sum(p.memory or 0 for p in self._processes(handle))
        used = min(used, device.memory_total)
        return _Memory(total=device.memory_total, used=used, free=device.memory_total - used)

    def nvmlDeviceGetUtilizationRates(self, handle):
        device = self._device(handle)
        if device.utilization is None or handle.mig is not None:
            raise NVMLError_NotSupported()
        return _Utilization(gpu=device.utilization, memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return self._listed(handle, ("compute", "both"))

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        return self._listed(handle, ("graphics", "both"))

    def nvmlDeviceGetMigMode(self, handle):
        device = self._device(handle)
        if handle.mig is not None or device.mig is None:
            raise NVMLError_NotSupported()
        mode = NVML_DEVICE_MIG_ENABLE if device.mig else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        device = self._device(handle)
        if handle.mig is not None or device.mig is None:
            raise NVMLError_NotSupported()
        return device.max_mig_devices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):
        device = self._device(handle)
        if handle.mig is not None or not device.mig:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < device.max_mig_devices:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(device.mig) or device.mig[index] is None:
            raise NVMLError_NotFound()
        return _Handle(handle.index, index)

    def nvmlDeviceGetGpuInstanceId(self, handle):
        if getattr(handle, "mig", None) is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self._device(handle).gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle):
        if getattr(handle, "mig", None) is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self._device(handle).compute_instance_id
