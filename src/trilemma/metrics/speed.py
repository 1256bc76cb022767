"""Speed and cost: how fast a model samples, and what its training cost.

Sampling is measured as throughput (samples per second over n samples) and as the latency of
one batch, with the number of network evaluations per sample (NFE), the quantity that decides
a diffusion sampler's cost. Training cost comes from what the training loop records in the
run folder (wall time, steps, parameters), plus the FLOPs of one training step counted by
`torch.utils.flop_counter.FlopCounterMode`, so the achieved FLOP/s can be stated as a fraction
of this machine's measured matmul peak: development hosts differ by 3× in that peak, so only
the fraction travels between machines.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from trilemma.checkpoints import latest_checkpoint, load_checkpoint, read_json
from trilemma.data import Normalizer
from trilemma.errors import RunError
from trilemma.families import Family, family_class


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                       size: int = 2048, repeats: int = 10) -> float:
    """Best-of-three dense matmul throughput in GFLOP/s: the ceiling achieved FLOP/s is
    reported against. A size × size product costs 2·size³ FLOPs."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(3):
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def peak_memory(device: torch.device | str | None = None) -> dict[str, int | None]:
    """Peak resident memory of this process so far, and peak CUDA memory allocated by torch.

    ru_maxrss is the high-water mark of the whole process since it started (everything it
    ran before counts too): kibibytes on Linux, bytes on macOS. The CUDA figure is
    `torch.cuda.max_memory_allocated`, since the last `reset_peak_memory_stats`.
    """
    try:
        import resource  # POSIX only
    except ImportError:
        rss_bytes = None
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_bytes = int(rss if sys.platform == "darwin" else rss * 1024)
    cuda = None
    if device is not None and torch.device(device).type == "cuda":
        cuda = int(torch.cuda.max_memory_allocated(torch.device(device)))
    return {"max_rss_bytes": rss_bytes, "cuda_max_allocated_bytes": cuda}


def sampling_speed(
    family: Family,
    normalizer: Normalizer,
    n: int,
    batch_size: int = 500,
    seed: int = 0,
    repeats: int = 3,
    **options: Any,
) -> dict[str, Any]:
    """Samples per second over n samples, and the latency of one batch.

    One untimed batch first warms up allocators and kernels. ``latency_s`` is the median of
    `repeats` timed batches of `batch_size` samples; ``seconds`` and ``samples_per_s`` time
    the generation of all n samples through the one sampling path (`trilemma.sampling.generate`,
    including the conversion to user space). `options` go to the family's sampler
    (sampler, steps, truncation, temperature, ...).
    """
    from trilemma.sampling import generate

    if n < 1 or batch_size < 1 or repeats < 1:
        raise ValueError("n, batch_size and repeats must be positive")
    device = family.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batch = min(batch_size, n)
    warm = generate(family, normalizer, batch, seed=seed, batch_size=batch, **options)
    latencies = []
    for i in range(repeats):
        timed = generate(family, normalizer, batch, seed=seed + 1 + i, batch_size=batch, **options)
        latencies.append(timed.seconds)
    everything = generate(family, normalizer, n, seed=seed, batch_size=batch_size, **options)
    return {
        "samples_per_s": everything.samples_per_second,
        "seconds": everything.seconds,
        "n": int(n),
        "latency_s": statistics.median(latencies),
        "latency_batch_size": batch,
        "batch_size": int(batch_size),
        "nfe": int(warm.nfe),
        "options": {k: v for k, v in options.items() if v is not None},
        "device": str(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        **peak_memory(device),
    }


def training_step_flops(family: Family, x: torch.Tensor, labels: torch.Tensor | None = None) -> int:
    """FLOPs of one `training_step` on batch `x` (model space), forward and backward, as
    `FlopCounterMode` counts them: matrix products and convolutions (2 per multiply-add);
    element-wise work and the optimiser update are not counted.

    The step is taken on a copy of the family, so the caller's weights and optimiser state
    are left as they were.
    """
    import copy

    clone = copy.deepcopy(family)
    clone.train()
    optimizers = clone.build_optimizers()
    with FlopCounterMode(display=False) as counter:
        clone.training_step(x, labels, optimizers)
    return int(counter.get_total_flops())


def _example_batch(family: Family, batch_size: int, device: torch.device):
    """A batch of the run's shape in model space; FLOP counts do not depend on the values."""
    data = family.config.data
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((batch_size, *data.sample_shape), generator=generator).to(device) * 2 - 1
    labels = None
    if data.num_classes:
        labels = torch.randint(0, data.num_classes, (batch_size,), generator=generator).to(device)
    return x, labels


def training_cost(
    run_dir: str | Path,
    *,
    count_flops: bool = True,
    peak_gflops: float | None = None,
) -> dict[str, Any]:
    """What training a run cost, from its folder: seconds, steps, parameters, images/s.

    ``train_seconds`` is the training loop's own clock (``elapsed_seconds`` of the latest
    checkpoint: optimisation steps only, without checkpoint writing or start-up), so images/s
    = steps × batch size / train_seconds. With `count_flops`, the FLOPs of one training step
    at the run's batch size are counted on the CPU (see `training_step_flops`) and
    ``achieved_gflops`` = FLOPs per step × steps / train_seconds; with `peak_gflops`
    (`matmul_peak_gflops` measured on the machine that trained), also its fraction of that
    peak; measure that peak in the dtype the run trained in (``precision`` in its config:
    bf16 matmuls have a higher ceiling than fp32). ``peak_memory`` is what the training process
    had reached at its latest checkpoint (see `peak_memory`). ``rollbacks`` lists the run's
    divergence rollbacks (step, losses, reason, restored step, learning-rate scale).
    """
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise RunError(f"{run_dir}: holds no checkpoint yet (training has not saved one)")
    _, _, state = load_checkpoint(checkpoint)
    steps, seconds = int(state["step"]), float(state["elapsed_seconds"])
    family_config = config["family_config"]
    n_train = int(config["data"].get("n_train", 0)) or None
    batch_size = int(family_config["optim"]["batch_size"])
    if n_train is not None:
        batch_size = min(batch_size, n_train)  # the loop never draws a batch larger than the data
    result: dict[str, Any] = {
        "family": config["family"],
        "steps": steps,
        "train_seconds": seconds,
        "batch_size": batch_size,
        "images_seen": steps * batch_size,
        "images_per_s": steps * batch_size / seconds if seconds > 0 else None,
        "steps_per_s": steps / seconds if seconds > 0 else None,
        # train_seconds is on the budget's clock: CPU seconds on a CPU (runs before the clock
        # was recorded counted wall seconds), wall seconds on a GPU.
        "clock": (config.get("budget") or {}).get("clock", "wall"),
        "wall_seconds": float(state.get("wall_seconds", seconds)),
        "threads": config.get("threads"),
        "parameters": int(config["parameters"]),
        "budget": config.get("budget"),
        "device": config.get("device"),
        "precision": config.get("precision", "fp32"),
        "peak_memory": state.get("peak_memory"),
        # Divergence rollbacks (trilemma.training.divergence), as config.json records them.
        "rollbacks": config.get("rollbacks", []),
    }
    if count_flops:
        cls = family_class(config["family"])
        family = cls(cls.config_class.from_json(family_config))
        x, labels = _example_batch(family, batch_size, torch.device("cpu"))
        flops = training_step_flops(family, x, labels)
        result["flops_per_step"] = flops
        result["achieved_gflops"] = flops * steps / seconds / 1e9 if seconds > 0 else None
        if peak_gflops is not None and result["achieved_gflops"] is not None:
            result["matmul_peak_gflops"] = peak_gflops
            result["fraction_of_peak"] = result["achieved_gflops"] / peak_gflops
    return result
