"""A stand-in for the ``pynvml`` module, for tests without a GPU.

``FakeNvml(4)`` behaves like ``pynvml`` on a machine with four GPUs: the same
function names, handles from ``nvmlDeviceGetHandleByIndex``, an ``NVMLError``
class, and calls before ``nvmlInit`` fail as NVML's do. It counts ``nvmlInit``
and ``nvmlShutdown`` calls so tests can check they are paired. Instances are
plain objects and pickle (with dill or pickle) as long as this module is
importable.
"""

from dataclasses import dataclass, field

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12


class NVMLError(Exception):
    """Same shape as ``pynvml.NVMLError``: carries the NVML return code."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return f"fake NVML error {self.value}"


@dataclass
class FakeDevice:
    uuid: str
    name: str = "Fake GPU"
    memory_total: int = 80 * 2**30
    memory_used: int = 2**20
    utilization: int | None = 0  # None: device does not support the query


@dataclass
class _Memory:
    total: int
    used: int
    free: int


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass(frozen=True)
class _Handle:
    index: int


def fake_uuid(index: int) -> str:
    """A UUID in NVML's format, distinct per index and with a distinct prefix."""
    return f"GPU-{index:08x}-1111-2222-3333-{index:012x}"


@dataclass
class FakeNvml:
    """Module-like fake of ``pynvml``.

    :param devices: Either a number of identical GPUs or a list of
        :class:`FakeDevice`
    :param init_error: If set, ``nvmlInit`` raises ``NVMLError(init_error)``
        (``NVML_ERROR_LIBRARY_NOT_FOUND`` is what a machine without driver gives)
    :param bytes_strings: Return names and UUIDs as bytes, like old releases
    """

    devices: list = field(default_factory=list)
    init_error: int | None = None
    bytes_strings: bool = False
    init_calls: int = 0
    shutdown_calls: int = 0
    _initialised: int = 0

    NVMLError = NVMLError

    def __post_init__(self):
        if isinstance(self.devices, int):
            self.devices = [FakeDevice(uuid=fake_uuid(i)) for i in range(self.devices)]

    def _check(self):
        if self._initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _str(self, text: str):
        return text.encode() if self.bytes_strings else text

    def _device(self, handle) -> FakeDevice:
        self._check()
        if not isinstance(handle, _Handle):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.devices[handle.index]

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
        return _Memory(
            total=device.memory_total,
            used=device.memory_used,
            free=device.memory_total - device.memory_used,
        )

    def nvmlDeviceGetUtilizationRates(self, handle):
        device = self._device(handle)
        if device.utilization is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return _Utilization(gpu=device.utilization, memory=0)
