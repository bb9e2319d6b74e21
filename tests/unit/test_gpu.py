"""Unit tests of syne_tune_localx.gpu on a stub host, with a fake NVML."""

import logging
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dill
import pytest

try:
    import fake_nvml
except ImportError:  # tests/ is not on sys.path when pytest runs from tests/unit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fake_nvml

from fake_nvml import (
    GIB,
    FakeDevice,
    FakeNvml,
    FakeProcess,
    fake_mig_uuid,
    fake_uuid,
    mig_instances,
    register_process,
)

from syne_tune_localx.errors import ConfigurationError
from syne_tune_localx.gpu import GpuDevice, GpuProcess, GpuRotationMixin, NvmlInventory
from syne_tune_localx.hooks import BackendHooks

LOGGER = "syne_tune_localx.gpu"
CVD = "CUDA_VISIBLE_DEVICES"


class Host(GpuRotationMixin, BackendHooks):
    """The smallest host the mixin needs."""


class RecordingRoot(BackendHooks):
    """A host end that adds its own variable and records process ends."""

    def __init__(self, *, root_option=None, **kwargs):
        super().__init__(**kwargs)
        self.root_option = root_option
        self.ended = []

    def _trial_environment(self, trial_id, config):
        return {"FROM_ROOT": str(trial_id)}

    def _on_trial_process_end(self, trial_id):
        self.ended.append(trial_id)


class CooperativeHost(GpuRotationMixin, RecordingRoot):
    pass


@pytest.fixture(autouse=True)
def _no_parent_cvd(monkeypatch):
    monkeypatch.delenv(CVD, raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


def make_host(num_gpus=4, cls=Host, **kwargs):
    nvml = FakeNvml(num_gpus)
    host = cls(gpu_inventory=NvmlInventory(nvml=nvml), **kwargs)
    return host, nvml


def launch(host, trial_id):
    return host._trial_environment(trial_id, {"x": 1})


def unavailable_records(caplog):
    return [r for r in caplog.records if r.name == LOGGER and "No GPU" in r.getMessage()]


# --- inventory --------------------------------------------------------


@pytest.mark.parametrize("num_gpus", [1, 2, 4, 8])
def test_inventory_lists_every_gpu_with_its_details(num_gpus):
    nvml = FakeNvml(num_gpus)
    nvml.devices[0].utilization = 37
    devices = NvmlInventory(nvml=nvml).devices()
    assert [d.index for d in devices] == list(range(num_gpus))
    assert [d.uuid for d in devices] == [fake_uuid(i) for i in range(num_gpus)]
    assert [d.cuda_id for d in devices] == [str(i) for i in range(num_gpus)]
    assert devices[0] == GpuDevice(
        index=0,
        uuid=fake_uuid(0),
        name="Fake GPU",
        memory_total=80 * 2**30,
        memory_used=2**20,
        utilization=37,
        cuda_id="0",
        processes=(),
    )
    # NVML is opened and closed once per query: no live handle stays around.
    assert nvml.init_calls == nvml.shutdown_calls == 1
    assert nvml._initialised == 0


def test_inventory_decodes_bytes_and_tolerates_missing_utilisation():
    nvml = FakeNvml(
        [FakeDevice(uuid="GPU-aaaa", name="Old GPU", memory_total=100, memory_used=40, utilization=None)],
        bytes_strings=True,
    )
    (device,) = NvmlInventory(nvml=nvml).devices()
    assert (device.uuid, device.name) == ("GPU-aaaa", "Old GPU")
    assert (device.memory_total, device.memory_used, device.utilization) == (100, 40, None)


def test_inventory_honours_cvd_indices_in_their_order(monkeypatch):
    monkeypatch.setenv(CVD, "2, 0")
    devices = NvmlInventory(nvml=FakeNvml(4)).devices()
    assert [d.index for d in devices] == [2, 0]
    assert [d.cuda_id for d in devices] == ["2", "0"]


def test_inventory_honours_cvd_uuids_and_prefixes(monkeypatch):
    full = fake_uuid(3)
    prefix = fake_uuid(1)[: len("GPU-00000001")]
    monkeypatch.setenv(CVD, f"{full},{prefix.upper().replace('GPU-', 'gpu-')}")
    devices = NvmlInventory(nvml=FakeNvml(4)).devices()
    assert [d.index for d in devices] == [3, 1]
    # Named by UUID in the parent: children are told full UUIDs.
    assert [d.cuda_id for d in devices] == [fake_uuid(3), fake_uuid(1)]


def test_inventory_empty_cvd_means_no_gpu(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setenv(CVD, "")
    inventory = NvmlInventory(nvml=FakeNvml(4))
    assert inventory.devices() == []
    assert inventory.devices() == []
    (record,) = unavailable_records(caplog)
    assert "CUDA_VISIBLE_DEVICES" in record.getMessage()
    assert "CUDA_VISIBLE_DEVICES" in inventory.unavailable_reason


@pytest.mark.parametrize(
    "cvd, expected",
    [
        ("1,7,2", [1]),  # out of range
        ("1,foo,2", [1]),  # not an index or UUID
        ("-1", []),  # the usual way to hide all GPUs
        ("3,1,3,0", [3, 1]),  # repeated device
        ("GPU-0", []),  # ambiguous UUID prefix: matches every fake GPU
        ("0,GPU-ffff", [0]),  # unknown UUID
        ("2,MIG-abcd,0", [2]),  # no such MIG instance
    ],
)
def test_inventory_invalid_cvd_entry_ends_the_list(monkeypatch, caplog, cvd, expected):
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setenv(CVD, cvd)
    devices = NvmlInventory(nvml=FakeNvml(4)).devices()
    assert [d.index for d in devices] == expected
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and cvd in warnings[0].getMessage()


def test_inventory_lists_processes_with_their_memory():
    nvml = FakeNvml(2)
    nvml.devices[1].processes = [
        FakeProcess(pid=30, memory=5 * GIB),
        FakeProcess(pid=10, memory=300 * 2**20, kind="graphics"),
        FakeProcess(pid=20, memory=2 * GIB, kind="both"),  # in both lists: counted once
        FakeProcess(pid=40, memory=None),  # NVML cannot tell (e.g. WDDM)
    ]
    first, second = NvmlInventory(nvml=nvml).devices()
    assert first.processes == ()
    assert second.processes == (
        GpuProcess(pid=10, memory=300 * 2**20, kind="graphics"),
        GpuProcess(pid=20, memory=2 * GIB, kind="compute+graphics"),
        GpuProcess(pid=30, memory=5 * GIB, kind="compute"),
        GpuProcess(pid=40, memory=None, kind="compute"),
    )
    # the driver's own share plus the processes
    assert second.memory_used == 2**20 + 5 * GIB + 300 * 2**20 + 2 * GIB


def test_inventory_without_process_listing_says_so_once(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    nvml = FakeNvml([FakeDevice(uuid=fake_uuid(0), processes_supported=False)])
    inventory = NvmlInventory(nvml=nvml)
    for _ in range(3):
        (device,) = inventory.devices()
        assert device.processes is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # compute and graphics, once each
    assert all("not supported" in m and fake_uuid(0) in m for m in messages)


def test_inventory_follows_processes_that_come_and_go(tmp_path):
    nvml = FakeNvml(1, process_dir=tmp_path)
    inventory = NvmlInventory(nvml=nvml)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        register_process(tmp_path, child.pid, "0", 3 * GIB)
        register_process(tmp_path, 2**22 + 17, "0", GIB)  # no such process
        (device,) = inventory.devices()
        assert device.processes == (GpuProcess(pid=child.pid, memory=3 * GIB),)
        assert device.memory_used == 2**20 + 3 * GIB
    finally:
        child.kill()
        child.wait()
    (device,) = inventory.devices()
    assert device.processes == () and device.memory_used == 2**20


def mig_machine():
    """GPU 0 with MIG on (two instances, slot 1 empty), GPU 1 MIG-capable but
    off, GPU 2 without MIG."""
    instances = mig_instances(0, 3)
    instances[1] = None
    return FakeNvml(
        [
            FakeDevice(uuid=fake_uuid(0), mig=instances),
            FakeDevice(uuid=fake_uuid(1), mig=[]),
            FakeDevice(uuid=fake_uuid(2)),
        ]
    )


def test_mig_instances_replace_their_gpu():
    devices = NvmlInventory(nvml=mig_machine()).devices()
    assert [d.uuid for d in devices] == [
        fake_mig_uuid(0, 0), fake_mig_uuid(0, 2), fake_uuid(1), fake_uuid(2),
    ]  # fmt: skip
    assert [d.cuda_id for d in devices] == [fake_mig_uuid(0, 0), fake_mig_uuid(0, 2), "1", "2"]
    mig = devices[0]
    assert mig.is_mig and mig.parent_uuid == fake_uuid(0) and mig.index == 0
    assert mig.mig_instance == (1, 0)
    assert mig.memory_total == 10 * GIB and mig.utilization is None
    assert not devices[2].is_mig
    # the parent's 80 GiB are not counted next to its instances
    assert sum(d.memory_total for d in devices) == 2 * 10 * GIB + 2 * 80 * GIB


@pytest.mark.parametrize(
    "cvd, expected",
    [
        ("0", [fake_mig_uuid(0, 0), fake_mig_uuid(0, 2)]),  # the instances of GPU 0
        (fake_uuid(0), [fake_mig_uuid(0, 0), fake_mig_uuid(0, 2)]),
        (f"{fake_mig_uuid(0, 2)},2", [fake_mig_uuid(0, 2), "2"]),
        (fake_mig_uuid(0, 2)[:12], [fake_mig_uuid(0, 2)]),  # a prefix is enough
        (f"MIG-{fake_uuid(0)}/3/0", [fake_mig_uuid(0, 2)]),  # naming before R470
        (f"MIG-{fake_uuid(0)}/9/0,1", []),
        (f"{fake_mig_uuid(0, 0)},0", [fake_mig_uuid(0, 0)]),  # repeats an instance
    ],
)
def test_cvd_names_mig_instances(monkeypatch, cvd, expected):
    monkeypatch.setenv(CVD, cvd)
    devices = NvmlInventory(nvml=mig_machine()).devices()
    assert [d.cuda_id for d in devices] == expected


def test_mig_enabled_without_instances_is_warned_and_offers_nothing(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    nvml = FakeNvml([FakeDevice(uuid=fake_uuid(0), mig=[None]), FakeDevice(uuid=fake_uuid(1))])
    inventory = NvmlInventory(nvml=nvml)
    assert [d.uuid for d in inventory.devices()] == [fake_uuid(1)]
    inventory.devices()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "MIG enabled but no MIG instance" in warnings[0].getMessage()
    nvml.devices.pop()
    assert inventory.devices() == []
    assert "MIG instance" in inventory.unavailable_reason


def test_rotation_places_trials_on_mig_instances():
    host = Host(gpu_inventory=NvmlInventory(nvml=mig_machine()))
    placed = [launch(host, t)[CVD] for t in range(4)]
    assert placed == [fake_mig_uuid(0, 0), fake_mig_uuid(0, 2), "1", "2"]


@pytest.fixture
def spy_no_subprocess(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the inventory must not start a process")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_inventory_without_pynvml_is_empty_logs_once_writes_nothing(
    monkeypatch, tmp_path, caplog, spy_no_subprocess
):
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    inventory = NvmlInventory()
    assert inventory.devices() == []
    assert inventory.devices() == []
    (record,) = unavailable_records(caplog)
    assert record.levelno == logging.INFO
    assert "pynvml" in record.getMessage()
    assert list(tmp_path.iterdir()) == []


def test_inventory_without_driver_is_empty_logs_once_writes_nothing(
    monkeypatch, tmp_path, caplog, spy_no_subprocess
):
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.chdir(tmp_path)
    nvml = FakeNvml(4, init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    inventory = NvmlInventory(nvml=nvml)
    for _ in range(3):
        assert inventory.devices() == []
    assert nvml.init_calls == 3
    (record,) = unavailable_records(caplog)
    assert "NVML cannot be initialised" in record.getMessage()
    assert list(tmp_path.iterdir()) == []


def test_inventory_zero_gpus_is_empty_logs_once(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    nvml = FakeNvml(0)
    inventory = NvmlInventory(nvml=nvml)
    assert inventory.devices() == [] and inventory.devices() == []
    assert len(unavailable_records(caplog)) == 1
    assert nvml.init_calls == nvml.shutdown_calls == 2


def test_inventory_failing_after_a_good_reading_warns_once_without_saying_no_gpu(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    nvml = FakeNvml(2)
    inventory = NvmlInventory(nvml=nvml)
    assert len(inventory.devices()) == 2
    nvml.init_error = fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED
    assert inventory.devices() == [] and inventory.devices() == []
    assert unavailable_records(caplog) == []
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "keeps the last one" in warning.getMessage()


def test_placement_keeps_the_last_reading_when_nvml_fails():
    nvml = FakeNvml(2)
    host = Host(gpu_inventory=NvmlInventory(nvml=nvml), trials_per_gpu=1,
                gpu_min_free_memory="1GiB", gpu_poll_interval=0)  # fmt: skip
    assert launch(host, 0)[CVD] == "0"
    nvml.init_error = fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED
    assert host._trial_wait_reason(1, {}) is None
    assert launch(host, 1)[CVD] == "1"


def test_inventory_imports_pynvml_lazily(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    inventory = NvmlInventory()  # must not import anything yet
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(2))
    assert [d.index for d in inventory.devices()] == [0, 1]


def test_inventory_holding_the_real_module_pickles():
    pynvml = pytest.importorskip("pynvml")
    inventory = NvmlInventory(nvml=pynvml)
    assert pickle.loads(pickle.dumps(inventory))._nvml is pynvml
    assert dill.loads(dill.dumps(inventory))._nvml is pynvml


# --- options ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"num_gpus_per_trial": -1}, "num_gpus_per_trial = -1"),
        ({"num_gpus_per_trial": 1.5}, "num_gpus_per_trial = 1.5"),
        ({"num_gpus_per_trial": True}, "num_gpus_per_trial = True"),
        ({"gpus_to_use": [0, -2]}, "[-2]"),
        ({"gpus_to_use": [1, 1, 2]}, "[1] more than once"),
        ({"gpus_to_use": [0, 1.0]}, "[1.0]"),
        ({"gpus_to_use": [True]}, "[True]"),
        ({"gpus_to_use": "0,1"}, "'0,1'"),
        ({"gpus_to_use": []}, "gpus_to_use = []"),
        ({"rotate_gpus": "yes"}, "rotate_gpus = 'yes'"),
        ({"gpu_inventory": object()}, "devices()"),
    ],
)
def test_bad_options_fail_at_construction(kwargs, fragment):
    with pytest.raises(ConfigurationError) as info:
        Host(**kwargs)
    assert fragment in str(info.value)


def test_construction_does_not_query_the_inventory():
    host, nvml = make_host(4, gpus_to_use=[9])
    assert nvml.init_calls == 0
    assert host.gpus_to_use == [9] and host.num_gpus_per_trial == 1 and host.rotate_gpus


def test_gpus_to_use_out_of_range_fails_at_first_launch_naming_everything():
    host, _ = make_host(4, gpus_to_use=[1, 5, 7])
    with pytest.raises(ConfigurationError) as info:
        launch(host, 0)
    message = str(info.value)
    assert "[5, 7]" in message
    assert "4 visible GPUs" in message
    assert fake_uuid(3) in message
    assert host.trial_gpus(0) == []


def test_gpus_to_use_without_any_gpu_says_why():
    host, _ = make_host(0, gpus_to_use=[0])
    with pytest.raises(ConfigurationError, match="no GPU is visible .*NVML reports no GPU"):
        launch(host, 0)


# --- placement ----------------------------------------------------------


def test_single_gpu_is_given_to_every_trial():
    host, _ = make_host(1)
    envs = [launch(host, t) for t in range(3)]
    assert [e[CVD] for e in envs] == ["0", "0", "0"]
    assert all(e["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for e in envs)
    assert host.trial_gpus(2) == [0]


@pytest.mark.parametrize("num_gpus", [1, 2, 4, 8])
def test_more_workers_than_gpus_spread_evenly(num_gpus):
    host, _ = make_host(num_gpus)
    # Three times as many concurrent trials as GPUs, none ending.
    placed = [launch(host, t)[CVD] for t in range(3 * num_gpus)]
    counts = Counter(placed)
    assert counts == {str(g): 3 for g in range(num_gpus)}
    # The first round takes the free GPUs in order, later rounds repeat it.
    assert placed[:num_gpus] == [str(g) for g in range(num_gpus)]
    assert placed[num_gpus : 2 * num_gpus] == placed[:num_gpus]


def test_gpu0_does_not_collect_the_overflow():
    # The seed sent every overflow trial to the oldest trial's GPU (GPU 0).
    host, _ = make_host(2)
    placed = [launch(host, t)[CVD] for t in range(4)]
    assert placed == ["0", "1", "0", "1"]


def test_free_gpu_beats_fewer_prior_assignments():
    host, _ = make_host(2)
    assert launch(host, 0)[CVD] == "0"
    assert launch(host, 1)[CVD] == "1"
    host._on_trial_process_end(1)
    assert launch(host, 2)[CVD] == "1"
    host._on_trial_process_end(2)
    # GPU 1 has 2 prior assignments, GPU 0 only 1, but GPU 0 is busy.
    assert launch(host, 3)[CVD] == "1"


def test_all_busy_tie_break_counts_every_gpu_then_lowest_position():
    host, _ = make_host(3)
    assert [launch(host, t)[CVD] for t in range(3)] == ["0", "1", "2"]
    host._on_trial_process_end(1)
    assert launch(host, 3)[CVD] == "1"  # the free one; GPU 1 now has 2 assignments
    # All busy, counts 0:1 1:2 2:1 -> position 0, then 2 (not 1), then 0.
    assert [launch(host, t)[CVD] for t in (4, 5, 6)] == ["0", "2", "0"]


@pytest.mark.parametrize("num_gpus, per_trial", [(3, 2), (4, 2), (8, 3)])
def test_multi_gpu_trials_never_repeat_a_gpu_and_stay_balanced(num_gpus, per_trial):
    host, _ = make_host(num_gpus, num_gpus_per_trial=per_trial)
    counts = Counter()
    for t in range(num_gpus):  # num_gpus * per_trial assignments in all
        gpus = launch(host, t)[CVD].split(",")
        assert len(gpus) == per_trial == len(set(gpus))
        assert sorted(int(g) for g in gpus) == sorted(host.trial_gpus(t))
        counts.update(gpus)
    assert counts == {str(g): per_trial for g in range(num_gpus)}


def test_first_multi_gpu_trials_take_free_gpus():
    host, _ = make_host(3, num_gpus_per_trial=2)
    assert launch(host, 0)[CVD] == "0,1"
    assert launch(host, 1)[CVD] == "2,0"  # one free, then fewest assignments
    assert launch(host, 2)[CVD] == "1,2"


def test_too_many_gpus_per_trial_is_clamped_with_a_warning(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    host, _ = make_host(2, num_gpus_per_trial=4)
    assert launch(host, 0)[CVD] == "0,1"
    assert launch(host, 1)[CVD] == "0,1"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "num_gpus_per_trial = 4" in warnings[0].getMessage()


def test_one_entry_gpus_to_use_is_honoured():
    host, _ = make_host(4, gpus_to_use=[2])
    assert [launch(host, t)[CVD] for t in range(3)] == ["2", "2", "2"]
    assert host.trial_gpus(1) == [2]


def test_gpus_to_use_rotates_over_its_entries_only():
    host, _ = make_host(8, gpus_to_use=[6, 1, 4])
    placed = [launch(host, t)[CVD] for t in range(6)]
    assert placed == ["1", "4", "6", "1", "4", "6"]


def test_gpus_to_use_are_positions_after_parent_cvd_indices(monkeypatch):
    monkeypatch.setenv(CVD, "3,1,0")
    host, _ = make_host(4, gpus_to_use=[1, 2])
    assert [launch(host, t)[CVD] for t in range(2)] == ["1", "0"]
    assert host.trial_gpus(1) == [2]


def test_parent_uuids_are_passed_on_as_uuids(monkeypatch):
    monkeypatch.setenv(CVD, f"{fake_uuid(2)},{fake_uuid(0)[:12]}")
    host, _ = make_host(4)
    assert [launch(host, t)[CVD] for t in range(2)] == [fake_uuid(2), fake_uuid(0)]


def test_zero_gpus_per_trial_hides_all_gpus():
    host, _ = make_host(4, num_gpus_per_trial=0)
    env = launch(host, 0)
    assert env == {CVD: ""}
    assert host.trial_gpus(0) == []


def test_no_gpu_at_all_adds_nothing():
    host, _ = make_host(0)
    assert launch(host, 0) == {}
    host, _ = make_host(4)
    host._gpu_inventory = NvmlInventory(nvml=FakeNvml(4, init_error=fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED))
    assert launch(host, 0) == {}


def test_process_end_releases_the_gpus():
    host, _ = make_host(2)
    launch(host, 0)
    launch(host, 1)
    host._on_trial_process_end(0)
    assert host.trial_gpus(0) == []
    assert host.trial_gpus(1) == [1]
    host._on_trial_process_end(42)  # unknown trial: nothing to release
    assert launch(host, 2)[CVD] == "0"


def test_relaunch_without_end_does_not_hold_twice():
    host, _ = make_host(2)
    launch(host, 0)
    launch(host, 0)
    assert host.trial_gpus(0) == [1]
    # Only trial 0 holds anything, so GPU 0 is free again.
    assert launch(host, 1)[CVD] == "0"


def test_without_rotation_every_trial_sees_all_usable_gpus(monkeypatch):
    host, _ = make_host(4, rotate_gpus=False)
    assert [launch(host, t)[CVD] for t in range(3)] == ["0,1,2,3"] * 3
    assert host.trial_gpus(0) == []
    host, _ = make_host(4, rotate_gpus=False, gpus_to_use=[3, 0])
    env = launch(host, 0)
    assert env == {CVD: "3,0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_hooks_cooperate_with_the_rest_of_the_chain():
    host, _ = make_host(2, cls=CooperativeHost, root_option="kept")
    assert host.root_option == "kept"
    env = launch(host, 5)
    assert env == {"FROM_ROOT": "5", CVD: "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    host._on_trial_process_end(5)
    assert host.ended == [5]
    assert host.trial_gpus(5) == []


def test_dill_round_trip_keeps_placement_state():
    host, _ = make_host(3)
    for t in range(4):
        launch(host, t)  # 0, 1, 2, 0
    host._on_trial_process_end(1)
    copy = dill.loads(dill.dumps(host))
    assert copy.trial_gpus(3) == [0] and copy.trial_gpus(1) == []
    # Free GPU 1 first, then GPU 2 (fewer assignments than GPU 0).
    assert [launch(copy, t)[CVD] for t in (4, 5)] == ["1", "2"]
    # The original is untouched by the copy's launches.
    assert host.trial_gpus(4) == []


def test_dill_round_trip_before_first_launch_queries_where_it_runs(monkeypatch):
    host = Host()  # default inventory: pynvml imported only when needed
    copy = dill.loads(dill.dumps(host))
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(2))
    assert [launch(copy, t)[CVD] for t in range(3)] == ["0", "1", "0"]
