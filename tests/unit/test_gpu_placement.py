"""Unit tests of the GPU placement rules, waiting reasons and per-trial GPU
accounting of GpuRotationMixin, on a stub host with a fake NVML.

The stub host plays the backend's part of the hook contract: it asks
``_trial_wait_reason`` before ``_trial_environment``, calls ``_on_poll`` and
``_on_trial_process_end``, and answers ``trial_process_ids`` and
``trial_path``.
"""

import json
import logging
from pathlib import Path

import dill
import pytest
from fake_nvml import (
    GIB,
    MIB,
    FakeDevice,
    FakeNvml,
    FakeProcess,
    fake_mig_uuid,
    fake_uuid,
    mig_instances,
)

import syne_tune_localx.gpu as gpu_module
from syne_tune_localx.errors import ConfigurationError
from syne_tune_localx.gpu import (
    GpuDevice,
    GpuProcess,
    GpuRotationMixin,
    GpuState,
    NvmlInventory,
    PlacementRules,
    format_bytes,
    parse_memory_size,
)
from syne_tune_localx.hooks import BackendHooks

CVD = "CUDA_VISIBLE_DEVICES"
LOGGER = "syne_tune_localx.gpu"


class Host(GpuRotationMixin, BackendHooks):
    """The backend's side of the contract, and nothing more."""

    def __init__(self, *, root=None, **kwargs):
        super().__init__(**kwargs)
        self.root = root
        self.pids: dict[int, set[int]] = {}
        self.pid_queries = 0

    def trial_process_ids(self, trial_id):
        self.pid_queries += 1
        return set(self.pids.get(trial_id, ()))

    def trial_path(self, trial_id):
        path = Path(self.root) / str(trial_id)
        path.mkdir(parents=True, exist_ok=True)
        return path


class WaitingRoot(BackendHooks):
    """A mixin further right that makes trial 99 wait for its own reason."""

    def _trial_wait_reason(self, trial_id, config):
        return "the root says no" if trial_id == 99 else None


class CooperativeHost(GpuRotationMixin, WaitingRoot):
    pass


class Clock:
    """Stands in for the ``time`` module inside syne_tune_localx.gpu."""

    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now


@pytest.fixture(autouse=True)
def _no_parent_cvd(monkeypatch):
    monkeypatch.delenv(CVD, raising=False)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(gpu_module, "time", clock)
    return clock


def make_host(tmp_path, devices=2, poll=0.0, **kwargs):
    nvml = FakeNvml(devices)
    host = Host(
        root=tmp_path, gpu_inventory=NvmlInventory(nvml=nvml), gpu_poll_interval=poll, **kwargs
    )
    return host, nvml


def start(host, trial_id):
    """What the backend does for one pending trial: the CUDA_VISIBLE_DEVICES it
    got, or ``("waits", reason)``."""
    reason = host._trial_wait_reason(trial_id, {})
    if reason is not None:
        return ("waits", reason)
    return host._trial_environment(trial_id, {})[CVD]


def end(host, trial_id):
    host.pids.pop(trial_id, None)
    host._on_trial_process_end(trial_id)


# --- options --------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (1024, 1024),
        (0, 0),
        (2.5e9, 2_500_000_000),
        ("100", 100),
        ("4GiB", 4 * GIB),
        ("4 gib", 4 * GIB),
        ("512MiB", 512 * MIB),
        ("2Gi", 2 * GIB),
        ("10GB", 10 * 10**9),
        ("1.5g", 1_500_000_000),
        (" 3 TB ", 3 * 10**12),
        ("64k", 64_000),
        ("1e3MiB", 1000 * MIB),
    ],
)
def test_memory_sizes_are_read_like_kubernetes_reads_them(text, expected):
    assert parse_memory_size(text, "x") == expected


def test_memory_sizes_are_shown_steadily():
    assert format_bytes(9 * GIB) == "9.0 GiB"
    assert format_bytes(int(9.04 * GIB)) == "9.0 GiB"
    assert format_bytes(300 * MIB) == "0.3 GiB"
    assert format_bytes(40 * MIB) == "40 MiB"
    assert format_bytes(None) == "an unknown amount"


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        ({"trials_per_gpu": 0}, ["trials_per_gpu = 0", "positive int"]),
        ({"trials_per_gpu": -1}, ["trials_per_gpu = -1"]),
        ({"trials_per_gpu": 1.5}, ["trials_per_gpu = 1.5"]),
        ({"trials_per_gpu": True}, ["trials_per_gpu = True"]),
        ({"trials_per_gpu": "2"}, ["trials_per_gpu = '2'"]),
        ({"gpu_memory_per_trial": "4 gigs"}, ["gpu_memory_per_trial = '4 gigs'", "'4GiB'"]),
        ({"gpu_memory_per_trial": -1}, ["gpu_memory_per_trial = -1"]),
        ({"gpu_memory_per_trial": True}, ["gpu_memory_per_trial = True"]),
        ({"gpu_memory_per_trial": float("nan")}, ["gpu_memory_per_trial = nan"]),
        ({"gpu_memory_per_trial": [4]}, ["gpu_memory_per_trial = [4]"]),
        ({"gpu_min_free_memory": "GiB"}, ["gpu_min_free_memory = 'GiB'"]),
        ({"gpu_max_utilization": 101}, ["gpu_max_utilization = 101", "0 to 100"]),
        ({"gpu_max_utilization": -5}, ["gpu_max_utilization = -5"]),
        ({"gpu_max_utilization": "80"}, ["gpu_max_utilization = '80'"]),
        ({"gpu_poll_interval": -1}, ["gpu_poll_interval = -1"]),
        ({"rotate_gpus": False, "trials_per_gpu": 1}, ["rotate_gpus=True"]),
        ({"rotate_gpus": False, "gpu_min_free_memory": "1GiB"}, ["rotate_gpus=True"]),
    ],
)
def test_bad_placement_options_fail_at_construction(kwargs, fragments):
    with pytest.raises(ConfigurationError) as info:
        Host(**kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_options_are_off_by_default_and_read_once(tmp_path):
    host, nvml = make_host(tmp_path)
    assert host._gpu_rules == PlacementRules()
    assert not host._gpu_rules.active
    host, nvml = make_host(
        tmp_path, trials_per_gpu=2, gpu_memory_per_trial="10GiB", gpu_min_free_memory=GIB,
        gpu_max_utilization=90,
    )  # fmt: skip
    assert host._gpu_rules == PlacementRules(2, 10 * GIB, GIB, 90)
    assert host._gpu_rules.memory_needed == 10 * GIB
    assert nvml.init_calls == 0  # nothing is read before the first launch


def test_request_larger_than_every_gpu_fails_at_first_launch(tmp_path):
    host, _ = make_host(tmp_path, gpu_memory_per_trial="100GiB")
    with pytest.raises(ConfigurationError, match="100.0 GiB .*largest, GPU 0, has 80.0 GiB"):
        start(host, 0)
    # a CPU-only backend does not care
    host, _ = make_host(tmp_path, gpu_memory_per_trial="100GiB", num_gpus_per_trial=0)
    assert start(host, 0) == ""


# --- the seed's behaviour stays the default -------------------------------------


def test_default_never_waits_and_oversubscribes_like_the_seed(tmp_path):
    host, nvml = make_host(tmp_path, devices=2)
    # a foreign process filling GPU 0 changes nothing while no option is set
    nvml.devices[0].processes = [FakeProcess(pid=4242, memory=79 * GIB)]
    placed = [start(host, t) for t in range(5)]
    assert placed == ["0", "1", "0", "1", "0"]


def test_cpu_only_trials_see_no_gpu_and_never_wait(tmp_path):
    host, _ = make_host(tmp_path, devices=1, num_gpus_per_trial=0, trials_per_gpu=1)
    assert [start(host, t) for t in range(3)] == ["", "", ""]
    assert host.trial_gpu_usage(0) is None
    assert not (tmp_path / "0" / "gpu.json").exists()


def test_no_gpu_means_no_waiting(tmp_path):
    host, _ = make_host(tmp_path, devices=0, trials_per_gpu=1, gpu_min_free_memory="1GiB")
    assert host._trial_wait_reason(0, {}) is None
    assert host._trial_environment(0, {}) == {}
    assert host.gpu_placement_report() == []


# --- memory of others -------------------------------------------------------------


def test_gpu_with_a_big_foreign_process_is_skipped(tmp_path):
    host, nvml = make_host(tmp_path, devices=2, gpu_min_free_memory="4GiB")
    nvml.devices[0].processes = [FakeProcess(pid=4242, memory=78 * GIB)]
    assert [start(host, t) for t in range(3)] == ["1", "1", "1"]
    (report0, report1) = host.gpu_placement_report()
    assert report0["reason"] == (
        "78.0 GiB used by a foreign process (pid 4242), 2.0 GiB free, needs 4.0 GiB"
    )
    assert report0["foreign_processes"] == [{"pid": 4242, "memory": 78 * GIB}]
    assert report1["reason"] is None and report1["trials"] == [0, 1, 2]


def test_gpu_with_a_display_server_still_takes_trials(tmp_path):
    host, nvml = make_host(tmp_path, devices=1, gpu_min_free_memory="4GiB", trials_per_gpu=1)
    nvml.devices[0].processes = [FakeProcess(pid=1001, memory=300 * MIB, kind="graphics")]
    assert start(host, 0) == "0"


def test_several_foreign_processes_are_summed_and_named(tmp_path):
    host, nvml = make_host(tmp_path, devices=1, gpu_min_free_memory="10GiB")
    nvml.devices[0].processes = [
        FakeProcess(pid=p, memory=m * GIB) for p, m in [(11, 20), (12, 30), (13, 5), (14, 20)]
    ]
    kind, reason = start(host, 0)
    assert kind == "waits"
    assert reason == (
        "no GPU can take it: GPU 0: 75.0 GiB used by 4 foreign processes "
        "(pids 12, 11, 14, ...), 5.0 GiB free, needs 10.0 GiB"
    )


def test_unlisted_processes_are_said_so(tmp_path):
    devices = [FakeDevice(uuid=fake_uuid(0), memory_used=78 * GIB, processes_supported=False)]
    host, _ = make_host(tmp_path, devices=devices, gpu_min_free_memory="4GiB")
    _, reason = start(host, 0)
    assert "78.0 GiB used (NVML cannot list the processes)" in reason


def test_foreign_processes_that_come_and_go_are_followed(tmp_path, clock):
    host, nvml = make_host(tmp_path, devices=1, poll=1.0, gpu_min_free_memory="10GiB")
    assert start(host, 0) == "0"
    end(host, 0)
    nvml.devices[0].processes = [FakeProcess(pid=4242, memory=75 * GIB)]
    clock.now += 1.0
    _, reason = start(host, 1)
    assert "75.0 GiB used by a foreign process (pid 4242)" in reason
    nvml.devices[0].processes = []
    # the next reading is due only after the poll interval
    clock.now += 0.5
    assert start(host, 1)[0] == "waits"
    clock.now += 0.5
    assert start(host, 1) == "0"


# --- bookings ---------------------------------------------------------------------


def test_trials_started_in_the_same_poll_are_kept_apart_by_their_bookings(tmp_path, clock):
    # one reading for the whole poll: NVML shows nothing of the new trials yet
    host, nvml = make_host(tmp_path, devices=2, poll=10.0, gpu_memory_per_trial="50GiB")
    placed = [start(host, t) for t in range(3)]
    assert placed[:2] == ["0", "1"]
    assert placed[2] == (
        "waits",
        (
            "no GPU can take it: GPU 0: 50.0 GiB booked by trial 0, 30.0 GiB free, needs "
            "50.0 GiB; GPU 1: 50.0 GiB booked by trial 1, 30.0 GiB free, needs 50.0 GiB"
        ),
    )
    assert nvml.init_calls == 1


def test_bookings_let_a_gpu_be_shared_as_far_as_memory_goes(tmp_path):
    host, _ = make_host(tmp_path, devices=1, gpu_memory_per_trial="30GiB")
    assert [start(host, t) for t in range(2)] == ["0", "0"]
    assert start(host, 2)[0] == "waits"
    end(host, 0)
    assert start(host, 2) == "0"


def test_own_memory_counts_once_as_the_larger_of_request_and_use(tmp_path):
    host, nvml = make_host(tmp_path, devices=1, gpu_memory_per_trial="30GiB")
    assert start(host, 0) == "0"
    host.pids[0] = {500, 501}  # the trial and a child it started
    device = nvml.devices[0]
    base = device.memory_used

    def report():
        (entry,) = host.gpu_placement_report()
        return entry

    entry = report()
    assert entry["booked"] == {0: 30 * GIB} and entry["trial_memory"] == {}
    assert entry["memory_free"] == 80 * GIB - base - 30 * GIB
    # part of the request shows: the rest stays booked, nothing is counted twice
    device.processes = [FakeProcess(pid=500, memory=12 * GIB), FakeProcess(pid=501, memory=8 * GIB)]
    entry = report()
    assert entry["trial_memory"] == {0: 20 * GIB} and entry["booked"] == {0: 10 * GIB}
    assert entry["memory_free"] == 80 * GIB - base - 30 * GIB
    assert entry["foreign_processes"] == []
    # more than requested: the real use counts, the booking is gone
    device.processes = [FakeProcess(pid=500, memory=40 * GIB)]
    entry = report()
    assert entry["booked"] == {} and entry["memory_free"] == 80 * GIB - base - 40 * GIB
    # a foreign process next to it counts against the GPU
    device.processes.append(FakeProcess(pid=4242, memory=15 * GIB))
    entry = report()
    assert entry["memory_free"] == 80 * GIB - base - 55 * GIB
    assert entry["foreign_processes"] == [{"pid": 4242, "memory": 15 * GIB}]
    _, reason = start(host, 1)
    assert reason == (
        "no GPU can take it: GPU 0: 15.0 GiB used by a foreign process (pid 4242), "
        "40.0 GiB used by trial 0, 25.0 GiB free, needs 30.0 GiB"
    )


def test_a_process_leaving_its_tree_just_before_the_look_stays_ours(tmp_path, clock):
    # NVML is read, then the process table: a trial process that exits in
    # between is in the reading but no longer in its trial's tree
    host, nvml = make_host(tmp_path, devices=1, poll=1.0, gpu_min_free_memory="1GiB")
    assert start(host, 0) == "0"
    host.pids[0] = {500}
    nvml.devices[0].processes = [FakeProcess(pid=500, memory=6 * GIB)]
    clock.now += 1.0
    host._on_poll()
    host.pids[0] = set()
    clock.now += 1.0
    host._on_poll()
    (entry,) = host.gpu_placement_report()
    assert entry["foreign_processes"] == [] and entry["trial_memory"] == {0: 6 * GIB}
    # once the trial has ended, its pids mean nothing any more
    end(host, 0)
    host.gpu_placement_report()
    (entry,) = host.gpu_placement_report()
    assert entry["foreign_processes"] == [{"pid": 500, "memory": 6 * GIB}]


def test_minimum_free_memory_and_request_take_the_larger(tmp_path):
    host, _ = make_host(
        tmp_path, devices=1, gpu_memory_per_trial="10GiB", gpu_min_free_memory="75GiB"
    )
    assert start(host, 0) == "0"
    # 80 - 10 booked < 75: the second trial waits although 10 GiB would fit
    kind, reason = start(host, 1)
    assert kind == "waits" and "needs 75.0 GiB" in reason


# --- sharing ----------------------------------------------------------------------


def test_more_trials_than_gpus_wait_when_sharing_is_off(tmp_path):
    host, nvml = make_host(tmp_path, devices=2, trials_per_gpu=1)
    assert [start(host, t) for t in range(2)] == ["0", "1"]
    reason = "no GPU can take it: GPU 0: in use by trial 0; GPU 1: in use by trial 1"
    assert start(host, 2) == ("waits", reason)
    assert start(host, 3) == ("waits", reason)
    end(host, 1)
    assert start(host, 2) == "1"
    reason = "no GPU can take it: GPU 0: in use by trial 0; GPU 1: in use by trial 2"
    assert start(host, 3) == ("waits", reason)
    # trials_per_gpu alone needs no NVML reading after the first
    assert nvml.init_calls == 1


def test_trials_per_gpu_allows_that_many_on_one_gpu(tmp_path):
    host, _ = make_host(tmp_path, devices=2, trials_per_gpu=2)
    assert [start(host, t) for t in range(4)] == ["0", "1", "0", "1"]
    _, reason = start(host, 4)
    assert reason == (
        "no GPU can take it: GPU 0: in use by trials 0, 2 (trials_per_gpu = 2); "
        "GPU 1: in use by trials 1, 3 (trials_per_gpu = 2)"
    )


def test_excluded_gpus_are_named_in_the_reason(tmp_path):
    host, _ = make_host(tmp_path, devices=3, trials_per_gpu=1, gpus_to_use=[1])
    assert start(host, 0) == "1"
    assert start(host, 1) == (
        "waits",
        (
            "no GPU can take it: GPU 0: excluded by gpus_to_use; GPU 1: in use by trial 0; "
            "GPU 2: excluded by gpus_to_use"
        ),
    )
    report = host.gpu_placement_report()
    assert [r["reason"] for r in report] == [
        "excluded by gpus_to_use", "in use by trial 0", "excluded by gpus_to_use",
    ]  # fmt: skip


def test_labels_show_the_id_trials_get_when_it_differs(tmp_path, monkeypatch):
    monkeypatch.setenv(CVD, "2,0")
    host, _ = make_host(tmp_path, devices=3, trials_per_gpu=1)
    assert [start(host, t) for t in range(2)] == ["2", "0"]
    _, reason = start(host, 2)
    assert reason == "no GPU can take it: GPU 0 (2): in use by trial 0; GPU 1 (0): in use by trial 1"


def test_multi_gpu_trials_wait_for_enough_gpus(tmp_path):
    host, nvml = make_host(tmp_path, devices=3, num_gpus_per_trial=2, gpu_min_free_memory="4GiB")
    nvml.devices[1].processes = [FakeProcess(pid=77, memory=79 * GIB)]
    assert start(host, 0) == "0,2"
    host2, nvml2 = make_host(tmp_path, devices=3, num_gpus_per_trial=2, gpu_min_free_memory="4GiB")
    nvml2.devices[1].processes = [FakeProcess(pid=77, memory=79 * GIB)]
    nvml2.devices[2].processes = [FakeProcess(pid=78, memory=79 * GIB)]
    kind, reason = start(host2, 0)
    assert kind == "waits"
    assert reason.startswith("it needs 2 GPUs and only 1 can take it (GPU 0): GPU 1: 79.0 GiB")
    assert "GPU 2: 79.0 GiB used by a foreign process (pid 78)" in reason


def test_with_memory_options_the_emptier_gpu_goes_first(tmp_path):
    host, nvml = make_host(tmp_path, devices=2, gpu_min_free_memory="4GiB")
    nvml.devices[0].processes = [FakeProcess(pid=4242, memory=30 * GIB)]
    assert start(host, 0) == "1"


# --- utilisation ------------------------------------------------------------------


def test_busy_gpu_is_skipped_until_it_calms_down(tmp_path):
    host, nvml = make_host(tmp_path, devices=2, gpu_max_utilization=80)
    nvml.devices[0].utilization = 97
    assert start(host, 0) == "1"
    nvml.devices[1].utilization = 100  # our trial 0 works there
    # GPU 1 is judged by sharing rules only; GPU 0 is someone else's work
    assert start(host, 1) == "1"
    report = host.gpu_placement_report()
    assert report[0]["reason"] == "too busy: 90%+ utilisation (gpu_max_utilization = 80)"
    nvml.devices[0].utilization = 93  # the reason (logged once per change) stays put
    assert host.gpu_placement_report()[0]["reason"] == report[0]["reason"]
    nvml.devices[0].utilization = 10
    assert start(host, 2) == "0"


def test_gpu_without_utilisation_reading_is_not_too_busy(tmp_path):
    devices = [FakeDevice(uuid=fake_uuid(0), utilization=None)]
    host, _ = make_host(tmp_path, devices=devices, gpu_max_utilization=10)
    assert start(host, 0) == "0"


# --- MIG ----------------------------------------------------------------------------


def test_mig_instances_are_placed_with_their_own_memory(tmp_path):
    devices = [FakeDevice(uuid=fake_uuid(0), mig=mig_instances(0, 2, memory_each=10 * GIB))]
    host, _ = make_host(tmp_path, devices=devices, gpu_memory_per_trial="6GiB")
    placed = [start(host, t) for t in range(3)]
    assert placed[:2] == [fake_mig_uuid(0, 0), fake_mig_uuid(0, 1)]
    assert placed[2][0] == "waits"
    assert f"GPU 0 ({fake_mig_uuid(0, 0)}): 6.0 GiB booked by trial 0" in placed[2][1]


# --- the hook chain ------------------------------------------------------------------


def test_reasons_of_the_rest_of_the_chain_come_first(tmp_path):
    host = CooperativeHost(
        gpu_inventory=NvmlInventory(nvml=FakeNvml(1)), trials_per_gpu=1, gpu_poll_interval=0
    )
    assert host._trial_wait_reason(99, {}) == "the root says no"
    assert host._trial_wait_reason(0, {}) is None


def test_only_the_process_end_frees_a_gpu(tmp_path):
    host, _ = make_host(tmp_path, devices=1, trials_per_gpu=1)
    assert start(host, 0) == "0"
    for _ in range(3):
        host._on_poll()
        assert start(host, 1)[0] == "waits"
    end(host, 0)
    assert host.trial_gpus(0) == []
    assert start(host, 1) == "0"


def test_launch_without_asking_places_anyway_with_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    host, _ = make_host(tmp_path, devices=1, trials_per_gpu=1)
    assert start(host, 0) == "0"
    assert host._trial_environment(1, {})[CVD] == "0"
    (record,) = caplog.records
    assert "trial 1 is launched although no GPU can take it" in record.getMessage()


def test_reason_is_the_same_text_while_nothing_changes(tmp_path):
    host, nvml = make_host(tmp_path, devices=2, trials_per_gpu=1, gpu_min_free_memory="1GiB")
    nvml.devices[1].processes = [FakeProcess(pid=4242, memory=int(79.5 * GIB))]
    assert start(host, 0) == "0"
    reasons = {start(host, 1)[1] for _ in range(5)}
    assert len(reasons) == 1


# --- NVML reads are throttled ----------------------------------------------------------


def test_at_most_one_reading_per_interval(tmp_path, clock):
    host, nvml = make_host(tmp_path, devices=1, poll=1.0, gpu_min_free_memory="1GiB")
    host._on_poll()  # nothing launched, nothing running: no reading
    assert nvml.init_calls == 0
    assert start(host, 0) == "0"
    assert nvml.init_calls == 1
    for _ in range(20):
        host._on_poll()
        start(host, 1)
        clock.now += 0.01
    assert nvml.init_calls == 1
    clock.now += 1.0
    host._on_poll()
    start(host, 2)
    assert nvml.init_calls == 2
    # a trial that ended is read again before placing (its memory is gone now)
    end(host, 0)
    start(host, 3)
    assert nvml.init_calls == 3
    start(host, 4)
    assert nvml.init_calls == 3
    # the host is asked for the pids of running trials once per reading
    assert host.pid_queries <= 2 * nvml.init_calls


# --- accounting ----------------------------------------------------------------------


def test_peak_memory_is_summed_over_the_process_tree_and_written(tmp_path, clock):
    host, nvml = make_host(tmp_path, devices=2, poll=1.0)
    assert start(host, 0) == "0"
    record = json.loads((tmp_path / "0" / "gpu.json").read_text())
    assert record["gpus"] == [
        {"position": 0, "cuda_id": "0", "uuid": fake_uuid(0), "name": "Fake GPU", "index": 0,
         "peak_memory_bytes": 0},
    ]  # fmt: skip
    assert record["cuda_visible_devices"] == "0" and record["peak_memory_bytes"] == 0
    host.pids[0] = {700, 701, 702}
    samples = [
        [(700, 3 * GIB), (701, 1 * GIB)],
        [(700, 5 * GIB), (701, 1 * GIB), (702, 2 * GIB)],  # the peak: 8 GiB
        [(700, 6 * GIB)],
    ]
    for sample in samples:
        clock.now += 1.0
        nvml.devices[0].processes = [FakeProcess(pid=p, memory=m) for p, m in sample]
        nvml.devices[1].processes = [FakeProcess(pid=999, memory=50 * GIB)]  # not ours
        host._on_poll()
    usage = host.trial_gpu_usage(0)
    assert usage["peak_memory_bytes"] == 8 * GIB
    assert usage["gpus"][0]["peak_memory_bytes"] == 8 * GIB
    assert usage["samples"] == 3
    end(host, 0)
    assert json.loads((tmp_path / "0" / "gpu.json").read_text()) == usage
    # after its end a trial is no longer sampled
    clock.now += 1.0
    host._on_poll()
    assert host.trial_gpu_usage(0) == usage
    # the API hands out copies
    host.trial_gpu_usage(0)["gpus"].clear()
    assert host.trial_gpu_usage(0) == usage


def test_accounting_counts_every_gpu_a_trial_ran_on(tmp_path, clock):
    # without rotation a trial sees every GPU; its GPUs are those it was given
    host, nvml = make_host(tmp_path, devices=2, poll=1.0, rotate_gpus=False)
    assert start(host, 0) == "0,1"
    host.pids[0] = {800}
    nvml.devices[0].processes = [FakeProcess(pid=800, memory=2 * GIB)]
    nvml.devices[1].processes = [FakeProcess(pid=800, memory=3 * GIB)]
    clock.now += 1.0
    host._on_poll()
    usage = host.trial_gpu_usage(0)
    assert [g["peak_memory_bytes"] for g in usage["gpus"]] == [2 * GIB, 3 * GIB]
    assert usage["peak_memory_bytes"] == 5 * GIB


def test_relaunch_adds_to_the_same_record(tmp_path, clock):
    host, nvml = make_host(tmp_path, devices=2, poll=1.0, gpu_memory_per_trial="1GiB")
    assert start(host, 0) == "0"
    host.pids[0] = {900}
    nvml.devices[0].processes = [FakeProcess(pid=900, memory=4 * GIB)]
    clock.now += 1.0
    host._on_poll()
    end(host, 0)
    nvml.devices[0].processes = []
    assert start(host, 1) == "1"
    assert start(host, 0) == "0"  # resumed: both GPUs have one assignment, 0 is free
    usage = host.trial_gpu_usage(0)
    assert usage["peak_memory_bytes"] == 4 * GIB
    assert usage["memory_request_bytes"] == GIB
    assert [g["uuid"] for g in usage["gpus"]] == [fake_uuid(0)]


def test_unwritable_trial_folder_is_warned_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    blocker = tmp_path / "file"
    blocker.write_text("")
    host, _ = make_host(blocker, devices=1)
    host.trial_path = lambda trial_id: blocker  # a file, not a folder
    start(host, 0)
    start(host, 1)
    assert len([r for r in caplog.records if "cannot write the GPU usage" in r.getMessage()]) == 1
    assert host.trial_gpu_usage(1) is not None


# --- pickling -------------------------------------------------------------------------


def test_dill_round_trip_keeps_bookings_and_records(tmp_path):
    host, _ = make_host(tmp_path, devices=1, gpu_memory_per_trial="50GiB")
    assert start(host, 0) == "0"
    copy = dill.loads(dill.dumps(host))
    assert copy.trial_gpus(0) == [0]
    assert start(copy, 1)[0] == "waits"
    assert copy.trial_gpu_usage(0)["cuda_visible_devices"] == "0"
    end(copy, 0)
    assert start(copy, 1) == "0"


# --- the rules alone ---------------------------------------------------------------------


def test_rules_on_a_hand_made_state():
    device = GpuDevice(index=0, uuid="GPU-x", name="X", memory_total=16 * GIB,
                       memory_used=10 * GIB, utilization=50, processes=())  # fmt: skip
    state = GpuState(position=0, device=device, trials=[3], booked={3: 2 * GIB},
                     foreign=[GpuProcess(pid=5, memory=None)])  # fmt: skip
    assert state.free == 4 * GIB
    assert PlacementRules().objection(state) is None
    assert PlacementRules(min_free_memory=4 * GIB).objection(state) is None
    assert PlacementRules(min_free_memory=5 * GIB).objection(state) == (
        "an unknown amount used by a foreign process (pid 5), 2.0 GiB booked by trial 3, "
        "4.0 GiB free, needs 5.0 GiB"
    )
    assert PlacementRules(trials_per_gpu=1, max_utilization=10).objection(state) == (
        "in use by trial 3"
    )
