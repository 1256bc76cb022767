"""The one training loop: every family, every budget, EMA, checkpoints, resume, progress.

Reproducibility: data order is a function of (seed, epoch); all other randomness comes from
torch's global generator, whose state is saved in each checkpoint. A run interrupted and
resumed under a step budget ends with the same weights as an uninterrupted one.
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

from trilemma import __version__
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
) -> TrainResult:
    """Train one family on a data set into run_dir.

    ``on_step(step, elapsed, family, ema)`` is called after each step with the training seconds
    so far; time spent inside it is not counted against the budget. Returning True stops the
    run with a checkpoint, as Ctrl-C does (the caller can then resume).
    """
    run_dir = Path(run_dir)
    stored = _prepare_run_dir(run_dir, resume)
    torch_device = resolve_device(device)
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
    if (conditional or config.data.num_classes) and dataset.y_train is None:
        raise RunError(f"{dataset.name}: a conditional model needs labelled data, and this data has no labels")

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

    if stored is None:
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
            "parameters": sum(p.numel() for p in family.parameters()),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
    else:
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

    x_train = dataset.x_train
    y_train = dataset.y_train if config.data.num_classes else None
    if torch_device.type == "cuda":
        x_train = x_train.pin_memory()
    n = len(x_train)
    batch_size = min(config.optim.batch_size, n)
    batches_per_epoch = n // batch_size
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
        }
        save_checkpoint(run_dir, step, family.state_dict(), ema.state_dict(), state)

    last_losses: dict[str, float] = {}
    bar = _Progress(budget, step, elapsed, progress, f"{family_name} on {dataset.name}")
    last_saved_at, last_saved_step, interrupted = elapsed, step, False
    family.train()
    with _StopFlag() as stop:
        while not budget.done(step, elapsed):
            started = time.perf_counter()
            epoch, position = divmod(step, batches_per_epoch)
            if epoch != order_epoch:
                order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
                order_epoch = epoch
            index = order[position * batch_size:(position + 1) * batch_size]
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
            with autocast(torch_device, precision):
                losses = family.training_step(x, labels, optimizers)
            if family.grad_scaler is not None:
                family.grad_scaler.update()
            values = torch.stack([v.float() for v in losses.values()]).cpu()
            if not torch.isfinite(values).all():
                bad = {k: float(v) for k, v in zip(losses, values) if not math.isfinite(float(v))}
                bar.close()
                raise TrainingDiverged(
                    f"{family_name}: loss {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step + 1}; "
                    f"training stopped (the last good checkpoint, step {last_saved_step}, is in {run_dir})"
                )
            ema.update(step)
            step += 1
            elapsed += time.perf_counter() - started
            last_losses = dict(zip(losses, values.tolist()))
            bar.update(step, elapsed, last_losses)
            if on_step is not None and on_step(step, elapsed, family, ema):
                interrupted = True
                break
            if stop.requested:
                interrupted = True
                break
            due = (checkpoint_every_steps and step - last_saved_step >= checkpoint_every_steps) or (
                not checkpoint_every_steps and elapsed - last_saved_at >= checkpoint_every_seconds
            )
            if due:
                save()
                last_saved_at, last_saved_step = elapsed, step
    bar.update(step, elapsed, last_losses, force=True)
    bar.close()
    if step != last_saved_step or latest_checkpoint(run_dir) is None:
        save()
    images_per_second = step * batch_size / elapsed if elapsed > 0 else 0.0
    return TrainResult(run_dir, step, elapsed, images_per_second, last_losses, interrupted)
