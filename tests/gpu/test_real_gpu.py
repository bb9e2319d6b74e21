"""GPU placement on a real NVIDIA GPU: run with ``pytest -m gpu tests/gpu``.

Skipped where NVML cannot start or sees no GPU, and where no library to
allocate GPU memory (torch, cupy or numba) is importable. One short Tuner run:
one more trial than GPUs, each allocating 1 GiB and holding it for a few
seconds, with ``trials_per_gpu=1`` and a memory request. Checks that the
trials waited instead of sharing, what each trial saw in
``CUDA_VISIBLE_DEVICES``, and the peak GPU memory recorded for it.
"""

import contextlib
import importlib.util
import itertools
import json
import os
import time

import pytest

pytestmark = pytest.mark.gpu

ALLOCATION_MIB = 1024


def _visible_gpu_count() -> int:
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError):  # no driver, no library
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except pynvml.NVMLError:
        return 0
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _allocator() -> str | None:
    for name in ("torch", "cupy", "numba"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


if _visible_gpu_count() == 0:
    pytest.skip("no NVIDIA GPU visible through NVML", allow_module_level=True)

SCRIPT = r'''
import argparse, json, os, time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, default=0.0)
parser.add_argument("--mib", type=int, default=1024)
parser.add_argument("--hold", type=float, default=4.0)
parser.add_argument("--allocator", default="torch")
parser.add_argument("--st_checkpoint_dir")
args, _ = parser.parse_known_args()
size = args.mib * 2**20
if args.allocator == "torch":
    import torch
    block = torch.ones(size, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    count, name = torch.cuda.device_count(), torch.cuda.get_device_name(0)
elif args.allocator == "cupy":
    import cupy
    block = cupy.ones(size, dtype=cupy.uint8)
    cupy.cuda.Device(0).synchronize()
    count = cupy.cuda.runtime.getDeviceCount()
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
else:
    import numpy
    from numba import cuda
    block = cuda.to_device(numpy.ones(size, dtype=numpy.uint8))
    count, name = len(cuda.gpus), cuda.get_current_device().name.decode()
seen = {"cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "order": os.environ.get("CUDA_DEVICE_ORDER"),
        "count": count, "name": name, "pid": os.getpid(), "start": time.time()}
with open(os.path.join(os.path.dirname(args.st_checkpoint_dir), "seen.json"), "w") as f:
    json.dump(seen, f)
print("[tune-metric]: " + json.dumps({"loss": args.x, "epoch": 1, "st_worker_iter": 0,
                                      "st_worker_timestamp": time.time()}), flush=True)
time.sleep(args.hold)
'''


def test_trials_on_a_real_gpu(tmp_path, monkeypatch):
    allocator = _allocator()
    if allocator is None:
        pytest.skip("neither torch, cupy nor numba is importable to allocate GPU memory")
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.config_space import uniform
    from syne_tune.optimizer.baselines import RandomSearch

    from syne_tune_localx import LocalXBackend
    from syne_tune_localx.gpu import NvmlInventory

    # one reading (init, query every GPU, shutdown) happens at most once per
    # gpu_poll_interval during a run: it must stay well below that
    inventory, took = NvmlInventory(), []
    for _ in range(3):
        start = time.perf_counter()
        assert inventory.devices()
        took.append(time.perf_counter() - start)
    print(f"NVML readings took {[round(t, 4) for t in took]} s")
    assert max(took[1:]) < 0.5, f"an NVML reading takes {took} s: too slow for polling"

    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "results"))
    script = tmp_path / "alloc_train.py"
    script.write_text(SCRIPT)
    backend = LocalXBackend(
        entry_point=str(script),
        trials_per_gpu=1,
        gpu_memory_per_trial=f"{ALLOCATION_MIB + 512}MiB",
        gpu_poll_interval=0.5,
        stop_grace_period=5,
    )
    usable = backend.gpu_placement_report()
    free = [g for g in usable if g["reason"] is None]
    if not free:
        pytest.skip(f"no GPU can take a trial now: {[g['reason'] for g in usable]}")
    num_trials = len(free) + 1  # one more than GPUs: one must wait
    space = {"x": uniform(0, 1), "mib": ALLOCATION_MIB, "hold": 4.0, "allocator": allocator}
    Tuner(
        trial_backend=backend,
        scheduler=RandomSearch(space, metrics=["loss"], random_seed=0),
        stop_criterion=StoppingCriterion(max_num_trials_started=num_trials - 1),
        n_workers=num_trials,
        sleep_time=0.2,
        wait_trial_completion_when_stopping=True,
        save_tuner=False,
    ).run()

    cuda_ids = {g["uuid"]: g for g in usable}
    spans = {}
    for trial_id in range(num_trials):
        folder = backend.trial_path(trial_id)
        record = backend.process_record(trial_id)
        assert record["exit_code"] == 0, (folder / "std.err").read_text()[-3000:]
        seen = json.loads((folder / "seen.json").read_text())
        usage = json.loads((folder / "gpu.json").read_text())
        (gpu,) = usage["gpus"]
        # the trial saw exactly the GPU it was given, numbered as NVML numbers it
        assert seen["cvd"] == gpu["cuda_id"] == usage["cuda_visible_devices"]
        assert seen["order"] == "PCI_BUS_ID" and seen["count"] == 1
        assert gpu["uuid"] in cuda_ids
        # its allocation was seen in NVML, summed over its process tree
        if usage["peak_memory_bytes"] == 0:
            pytest.fail(
                f"no GPU memory recorded for trial {trial_id} ({usage['samples']} NVML readings): "
                f"does NVML report pids of another pid namespace (a container without "
                f"--pid=host)? pid inside: {seen['pid']}, {os.getpid()=}"
            )
        assert usage["peak_memory_bytes"] >= ALLOCATION_MIB * 2**20
        spans.setdefault(gpu["uuid"], []).append((seen["start"], record["end_time"]))
    # sharing was off: the extra trial waited for a GPU to be free
    for uuid, times in spans.items():
        times.sort()
        for (_, end), (start, _) in itertools.pairwise(times):
            assert start >= end, (uuid, times)
    assert sum(len(t) for t in spans.values()) == num_trials
