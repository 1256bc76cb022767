"""The one training loop: every family, every budget, EMA, checkpoints, resume, progress.

Reproducibility: data order is a function of (seed, epoch); all other randomness comes from
torch's global generator, whose state is saved in each checkpoint. A run interrupted and
resumed under a step budget ends with the same weights as an uninterrupted one.

Under torchrun (`trilemma.distributed`) the same loop trains one model with DDP: the configured
batch size is the global batch, each of N ranks takes a disjoint B/N of it through one
DistributedSampler over the single-process permutation, and the learning rate is unchanged;
rank 0 alone writes files. The saved state does not depend on N, so a run resumes under any N.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from trilemma import __version__, distributed
from trilemma.checkpoints import (
    latest_checkpoint,
    load_checkpoint,
    read_json,
    save_checkpoint,
    write_json_atomic,
)
from trilemma.data import Dataset
from trilemma.device import (
    autocast,
    describe_device,
    memory_format,
    resolve_device,
    resolve_precision,
)
from trilemma.ema import EMA
from trilemma.errors import RunError, TrainingDiverged
from trilemma.families import DataShape, Family, family_class
from trilemma.metrics.speed import peak_memory


@dataclass
class Budget:
    """Stop after this many optimisation steps, or this much training time, whichever first."""

    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self):
        if self.steps is None and self.seconds is None:
            raise ValueError("a budget needs steps or seconds")

    def progress(self, step: int, elapsed: float) -> float:
        fractions = []
        if self.steps:
            fractions.append(step / self.steps)
        if self.seconds:
            fractions.append(elapsed / self.seconds)
        return min(1.0, max(fractions))

    def done(self, step: int, elapsed: float) -> bool:
        return (self.steps is not None and step >= self.steps) or (
            self.seconds is not None and elapsed >= self.seconds
        )


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    seconds: float
    images_per_second: float
    losses: dict[str, float]
    interrupted: bool = False


def default_budget(dataset: Dataset) -> Budget:
    """Sized for a 2-core CPU: well under a minute on 2-D sets, three minutes on images."""
    return Budget(seconds=45.0 if dataset.kind == "points" else 180.0)


def learning_rate_scale(step: int, progress: float, warmup_steps: int, decay: str, final: float) -> float:
    """Linear warm-up over warmup_steps, then constant or cosine-annealed over the budget."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if decay == "cosine":
        return warm * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))
    return warm


class _StopFlag:
    """Ctrl-C asks the loop to finish its step and save, rather than dying mid-update."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        def handler(signum, frame):
            if self.requested:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self.requested = True

        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: no signal handling
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Progress:
    def __init__(self, budget: Budget, start_step: int, start_elapsed: float, enabled: bool, label: str):
        self.enabled = enabled
        self.budget = budget
        self.last = 0.0
        if not enabled:
            return
        from tqdm import tqdm

        if budget.steps is not None and budget.seconds is None:
            self.bar = tqdm(total=budget.steps, initial=start_step, desc=label, unit="step",
                            file=sys.stderr, dynamic_ncols=True)
            self.by_steps = True
        else:
            total = budget.seconds
            self.bar = tqdm(total=round(total), initial=round(start_elapsed), desc=label, unit="s",
                            file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f}s "
                                       "[{elapsed}<{remaining}{postfix}]")
            self.by_steps = False
            self.shown = round(start_elapsed)

    def update(self, step: int, elapsed: float, losses: dict[str, float], force: bool = False) -> None:
        if not self.enabled or (time.monotonic() - self.last < 0.5 and not force):
            return
        self.last = time.monotonic()
        self.bar.set_postfix({"step": step, **{k: f"{v:.4g}" for k, v in losses.items()}}, refresh=False)
        if self.by_steps:
            self.bar.update(step - self.bar.n)
        else:
            now = min(round(elapsed), self.bar.total)
            self.bar.update(now - self.shown)
            self.shown = now

    def close(self) -> None:
        if self.enabled:
            self.bar.close()


def _data_shape(dataset: Dataset, conditional: bool) -> DataShape:
    return DataShape(dataset.kind, dataset.sample_shape, dataset.num_classes if conditional else 0)


def _prepare_run_dir(run_dir: Path, resume: bool) -> dict | None:
    """Returns the stored run config when resuming; refuses to overwrite anything. Creates nothing."""
    config_path = run_dir / "config.json"
    if resume:
        if not config_path.exists():
            raise RunError(f"{run_dir}: no run to resume (config.json missing); drop --resume to start one")
        return read_json(config_path)
    if run_dir.exists():
        if config_path.exists():
            raise RunError(f"{run_dir}: already holds a run; pass --resume to continue it, or choose another --out")
        if run_dir.is_file() or any(run_dir.iterdir()):
            raise RunError(f"{run_dir}: exists and is not empty; choose a new or empty folder for --out")
    return None


DEVICE_RESIDENT_BYTES = 2 << 30  # training sets up to 2 GiB are copied to the GPU once

BATCH_RULE = ("the configured batch size is the global batch and the learning rate is unchanged; "
              "each of world_size ranks takes batch_size / world_size of every global batch")


def _replicas(family: Family, device: torch.device, compile: bool) -> dict[str, torch.nn.Module] | None:
    """The wrappers training_step calls: DDP under torchrun (it averages the gradients in
    backward, for every optimiser), torch.compile under --compile, both, or none."""
    if not distributed.is_distributed() and not compile:
        return None
    replicas: dict[str, torch.nn.Module] = {}
    for name, module in family.networks().items():
        if distributed.is_distributed():
            module = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
        replicas[name] = torch.compile(module) if compile else module
    return replicas


def train(
    family_name: str,
    dataset: Dataset,
    run_dir: str | Path,
    *,
    budget: Budget | None = None,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    conditional: bool = False,
    precision: str = "fp32",
    overrides: dict[str, Any] | None = None,
    checkpoint_every_seconds: float = 60.0,
    checkpoint_every_steps: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, float, Family, EMA], bool | None] | None = None,
    compile: bool = False,
) -> TrainResult:
    """Train one family on a data set into run_dir.

    ``on_step(step, elapsed, family, ema)`` is called after each step with the training seconds
    so far; time spent inside it is not counted against the budget. Returning True stops the
    run with a checkpoint, as Ctrl-C does (the caller can then resume).

    Under torchrun this is called on every rank, with identical weights and EMA on each (the
    EMA is kept on every rank so that sampling can be split across them). The run stops when
    any rank's on_step returns True, and the others wait for it at that point, so rank 0 may
    evaluate (or every rank may take part in a split evaluation) inside it. ``compile`` runs
    the trained networks through torch.compile.
    """
    run_dir = Path(run_dir)
    torch_device = resolve_device(device)
    distributed.init(torch_device)
    stored = _prepare_run_dir(run_dir, resume)
    distributed.barrier()  # every rank has looked at run_dir before rank 0 creates anything
    world, rank, main = distributed.world_size(), distributed.rank(), distributed.is_main()
    progress = progress and main
    if stored is not None:
        if stored["family"] != family_name:
            raise RunError(f"{run_dir}: holds a {stored['family']} run, not {family_name}")
        if stored["data"]["spec"] != dataset.info.get("spec"):
            raise RunError(
                f"{run_dir}: was trained on '{stored['data']['spec']}', not '{dataset.info.get('spec')}'"
            )
        seed = stored["seed"]
        cls = family_class(family_name)
        config = cls.config_class.from_json(stored["family_config"])
        budget = budget or Budget(**stored["budget"])
        precision = stored.get("precision", "fp32")
    else:
        budget = budget or default_budget(dataset)
        cls = family_class(family_name)
        config = cls.default_config(_data_shape(dataset, conditional), **(overrides or {}))
    precision = resolve_precision(precision, torch_device)
    if torch_device.type == "cuda":
        # Batches keep one shape for the whole run, so cuDNN's per-shape autotuning pays off.
        torch.backends.cudnn.benchmark = True
    if (conditional or config.data.num_classes) and dataset.y_train is None:
        raise RunError(f"{dataset.name}: a conditional model needs labelled data, and this data has no labels")
    n = len(dataset.x_train)
    batch_size = min(config.optim.batch_size, n)  # the global batch
    if batch_size % world:
        raise RunError(f"batch size {batch_size} does not split over {world} processes; "
                       f"use a multiple of {world} (--batch-size)")
    rank_batch = batch_size // world

    torch.manual_seed(seed)
    layout = memory_format(config.data.kind)
    family = cls(config).to(torch_device, memory_format=layout)
    optimizers = family.build_optimizers()
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
    if precision == "fp16":
        family.grad_scaler = torch.amp.GradScaler(torch_device.type)
    ema = EMA(family.averaged_network(), config.optim.ema_power, config.optim.ema_max_decay)
    step, elapsed = 0, 0.0

    if stored is None and main:
        run_dir.mkdir(parents=True, exist_ok=True)  # only once every check has passed
        write_json_atomic(run_dir / "config.json", {
            "trilemma_version": __version__,
            "family": family_name,
            "family_config": config.to_json(),
            "data": dataset.describe(),
            "seed": seed,
            "budget": {"steps": budget.steps, "seconds": budget.seconds},
            "device": describe_device(torch_device),
            "precision": precision,
            "compile": compile,
            "distributed": {
                "world_size": world,
                "backend": "nccl" if world > 1 and torch_device.type == "cuda" else ("gloo" if world > 1 else None),
                "global_batch": batch_size,
                "per_rank_batch": rank_batch,
                "rule": BATCH_RULE,
            },
            "parameters": sum(p.numel() for p in family.parameters()),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
    elif stored is not None:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is not None:
            model_state, ema_state, state = load_checkpoint(checkpoint, torch_device)
            family.load_state_dict(model_state)
            ema.load_state_dict(ema_state)
            for name, optimizer in optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            torch.set_rng_state(state["rng"]["torch"])
            if torch_device.type == "cuda" and state["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"], torch_device)
            step, elapsed = state["step"], state["elapsed_seconds"]
            if family.grad_scaler is not None and state.get("grad_scaler"):
                family.grad_scaler.load_state_dict(state["grad_scaler"])

    distributed.barrier()  # config.json exists before any rank goes on

    x_train = dataset.x_train
    y_train = dataset.y_train if config.data.num_classes else None
    if torch_device.type == "cuda":
        # A training set that fits lives on the GPU (no copy per step); a larger one is pinned,
        # so its batches copy without a staging buffer.
        if x_train.numel() * x_train.element_size() <= DEVICE_RESIDENT_BYTES:
            x_train = x_train.to(torch_device)
            y_train = y_train.to(torch_device) if y_train is not None else None
        else:
            x_train = x_train.pin_memory()
    batches_per_epoch = n // batch_size
    # The single-process permutation, seed * 1_000_003 + epoch; rank r reads positions r, r + N,
    # ... of it, so the ranks' i-th batches together are exactly the single-process i-th batch.
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed * 1_000_003)
    order, order_epoch = None, -1

    def save() -> None:
        state = {
            "step": step,
            "elapsed_seconds": elapsed,
            "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(torch_device) if torch_device.type == "cuda" else None,
            },
            "losses": last_losses,
            "grad_scaler": family.grad_scaler.state_dict() if family.grad_scaler is not None else None,
            "peak_memory": peak_memory(torch_device),
            "world_size": world,
        }
        if main:
            save_checkpoint(run_dir, step, family.state_dict(), ema.state_dict(), state)
        distributed.barrier()  # nobody resumes, reads or exits before the checkpoint is whole

    last_losses: dict[str, float] = {}
    bar = _Progress(budget, step, elapsed, progress, f"{family_name} on {dataset.name}")
    last_saved_at, last_saved_step, interrupted = elapsed, step, False
    family.train()
    family.install_replicas(_replicas(family, torch_device, compile))
    try:
        with _StopFlag() as stop:
            while not budget.done(step, elapsed):
                started = time.perf_counter()
                epoch, position = divmod(step, batches_per_epoch)
                if epoch != order_epoch:
                    sampler.set_epoch(epoch)
                    order = torch.tensor(list(sampler))
                    order_epoch = epoch
                index = order[position * rank_batch:(position + 1) * rank_batch].to(x_train.device)
                x = dataset.normalizer.to_model(x_train[index].to(torch_device, non_blocking=True))
                x = x.contiguous(memory_format=layout)
                labels = y_train[index].to(torch_device) if y_train is not None else None
                scale = learning_rate_scale(
                    step, budget.progress(step, elapsed), config.optim.warmup_steps,
                    config.optim.decay, config.optim.final_lr_fraction,
                )
                for optimizer in optimizers.values():
                    for group in optimizer.param_groups:
                        group["lr"] = group["base_lr"] * scale
                with autocast(torch_device, precision), distributed.batch_shard(rank, world):
                    losses = family.training_step(x, labels, optimizers)
                if family.grad_scaler is not None:
                    family.grad_scaler.update()
                values = torch.stack([v.float() for v in losses.values()]).cpu()
                step_seconds = time.perf_counter() - started
                if world > 1:
                    # One collective: the global batch's mean losses (a NaN on any rank reaches
                    # all, so all stop together) and rank 0's clock, which every rank's time
                    # budget then follows.
                    summed = distributed.all_reduce_sum(torch.cat([values, torch.tensor([step_seconds * main])]))
                    values, step_seconds = summed[:-1] / world, float(summed[-1])
                if not torch.isfinite(values).all():
                    bad = {k: float(v) for k, v in zip(losses, values) if not math.isfinite(float(v))}
                    bar.close()
                    raise TrainingDiverged(
                        f"{family_name}: loss {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step + 1}; "
                        f"training stopped (the last good checkpoint, step {last_saved_step}, is in {run_dir})"
                    )
                ema.update(step)
                step += 1
                elapsed += step_seconds
                last_losses = dict(zip(losses, values.tolist()))
                bar.update(step, elapsed, last_losses)
                asked = bool(on_step is not None and on_step(step, elapsed, family, ema))
                if distributed.broadcast_flag(asked or stop.requested):
                    interrupted = True
                    break
                due = (checkpoint_every_steps and step - last_saved_step >= checkpoint_every_steps) or (
                    not checkpoint_every_steps and elapsed - last_saved_at >= checkpoint_every_seconds
                )
                if due:
                    save()
                    last_saved_at, last_saved_step = elapsed, step
    finally:
        family.install_replicas(None)
    bar.update(step, elapsed, last_losses, force=True)
    bar.close()
    if distributed.broadcast_flag(step != last_saved_step or (main and latest_checkpoint(run_dir) is None)):
        save()
    images_per_second = step * batch_size / elapsed if elapsed > 0 else 0.0
    return TrainResult(run_dir, step, elapsed, images_per_second, last_losses, interrupted)
