"""The one training loop: every family, every budget, EMA, checkpoints, resume, progress.

Reproducibility: data order is a function of (seed, epoch) (`training.batches`); all other
randomness comes from torch's global generator, whose state is saved in each checkpoint. A run
interrupted and resumed under a step budget ends with the same weights as an uninterrupted one.

Under torchrun (`trilemma.distributed`) the same loop trains one model with DDP: the configured
batch size is the global batch, each rank takes a disjoint share of it, and the learning rate is
unchanged; rank 0 alone writes files. The saved state does not depend on N, so a run resumes
under any N. On a GPU the host waits for the device once per window of steps (`training.sync`).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from trilemma import clock, distributed
from trilemma.checkpoints import (
    clear_leftovers,
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
    fused_on_cuda,
    memory_format,
    resolve_device,
    resolve_precision,
)
from trilemma.ema import EMA
from trilemma.errors import RunError, TrainingDiverged
from trilemma.families import DataShape, Family, family_class
from trilemma.metrics.speed import peak_memory
from trilemma.training.batches import Batches
from trilemma.training.budget import Budget, default_budget, learning_rate_scale, resumed_budget
from trilemma.training.calibration import calibrated_budget
from trilemma.training.divergence import MAX_ROLLBACKS, DivergenceGuard
from trilemma.training.progress import ProgressBar, StopFlag
from trilemma.training.run_folder import (
    check_apart_from_data,
    check_resumable,
    distributed_record,
    prepare_run_dir,
    restore_training_state,
    run_record,
    training_state,
)
from trilemma.training.sync import SyncPolicy

StepCallback = Callable[[int, float, Family, EMA], "bool | None"]


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    seconds: float  # training time in the budget's unit (`clock`): CPU seconds on a CPU
    images_per_second: float  # per second of that clock
    losses: dict[str, float]
    interrupted: bool = False
    wall_seconds: float = 0.0  # the same steps on the wall clock
    clock: str = "wall"


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
    on_step: StepCallback | None = None,
    compile: bool = False,
    threads: int | None = None,
    sync_every: int | None = None,
) -> TrainResult:
    """Train one family on a data set into run_dir.

    On a CPU a budget in seconds becomes the steps those seconds run on one idle core, calibrated
    once per machine (`trilemma.training.calibration`): another process can slow a CPU run down
    but not shorten its training. On a GPU it counts wall seconds (`trilemma.clock`).
    On a CPU the run uses `threads` intra-op threads (default 1, whose CPU time does not grow
    when the machine is busy; the caller's setting is restored afterwards).

    ``on_step(step, elapsed, family, ema)`` is called after each step (on a GPU after each window
    of steps read back together, `training.sync`; ``sync_every`` fixes its length) with the
    training seconds so far; time spent inside it is not counted against the budget. Returning
    True stops the run with a checkpoint, as Ctrl-C does (the caller can then resume).

    Under torchrun this is called on every rank, with identical weights and EMA on each (the
    EMA is kept on every rank so that sampling can be split across them). The run stops when
    any rank's on_step returns True, and the others wait for it at that point, so rank 0 may
    evaluate (or every rank may take part in a split evaluation) inside it. ``compile`` runs
    the trained networks through torch.compile.
    """
    check_apart_from_data(Path(run_dir), dataset)  # refused before anything is created
    run = TrainingRun(family_name, dataset, Path(run_dir), budget=budget, seed=seed, device=device,
                      resume=resume, conditional=conditional, precision=precision,
                      overrides=overrides or {}, compile=compile, threads=threads, sync_every=sync_every)
    with clock.cpu_threads(run.threads):
        return run.train(on_step, progress=progress, every_seconds=checkpoint_every_seconds,
                         every_steps=checkpoint_every_steps)


class TrainingRun:
    """One run folder being trained: the family with its optimisers and EMA, the data order,
    the step counter and the training clock. `train` is the loop."""

    def __init__(self, family_name: str, dataset: Dataset, run_dir: Path, *, budget: Budget | None,
                 seed: int, device: str, resume: bool, conditional: bool, precision: str,
                 overrides: dict[str, Any], compile: bool, threads: int | None = None,
                 sync_every: int | None = None):
        self.family_name, self.dataset, self.run_dir, self.compile = family_name, dataset, run_dir, compile
        self.sync_every = sync_every
        self.device = resolve_device(device)
        self.unit = clock.unit_of(self.device)
        self.threads = (threads or clock.DEFAULT_CPU_THREADS) if self.device.type == "cpu" else None
        distributed.init(self.device)
        stored = prepare_run_dir(run_dir, resume)
        distributed.barrier()  # every rank has looked at run_dir before rank 0 creates anything
        self.world, self.rank, self.main = distributed.world_size(), distributed.rank(), distributed.is_main()
        if self.main:
            clear_leftovers(run_dir)  # of writers killed earlier; nothing else writes here now
        cls = family_class(family_name)
        if stored is not None:
            check_resumable(stored, run_dir, family_name, dataset)
            seed, config = stored["seed"], cls.config_class.from_json(stored["family_config"])
            budget = resumed_budget(budget, Budget.from_json(stored["budget"]))
            precision = stored.get("precision", "fp32")
            if threads is None and self.threads is not None:
                self.threads = stored.get("threads") or self.threads
        else:
            data = DataShape(dataset.model_kind, dataset.sample_shape, dataset.num_classes if conditional else 0, dataset.layout)
            budget, config = budget or default_budget(dataset), cls.default_config(data, **overrides)
            if self.unit == "cpu" and budget.seconds and budget.steps is None:
                budget = calibrated_budget(budget, family_name, dataset, conditional=conditional,
                                           overrides=overrides, precision=resolve_precision(precision, self.device))
        self.seed, self.config, self.budget = seed, config, budget
        self.precision = resolve_precision(precision, self.device)
        if self.device.type == "cuda":
            # Batches keep one shape for the whole run, so cuDNN's per-shape autotuning pays off.
            torch.backends.cudnn.benchmark = True
        if (conditional or config.data.num_classes) and dataset.y_train is None:
            raise RunError(f"{dataset.name}: a conditional model needs labelled data, and this data has no labels")
        self.batch_size = min(config.optim.batch_size, len(dataset.x_train))  # the global batch
        if self.batch_size % self.world:
            raise RunError(f"batch size {self.batch_size} does not split over {self.world} processes; "
                           f"use a multiple of {self.world} (--batch-size)")
        self._build(cls)
        if stored is None:
            self._write_record()
        else:
            self._restore()
        distributed.barrier()  # config.json exists before any rank goes on
        self._place_data()

    # ------------------------------------------------------------------------ setting up

    def _build(self, cls: type[Family]) -> None:
        torch.manual_seed(self.seed)
        self.layout = memory_format(self.config.data.kind)
        self.family = cls(self.config).to(self.device, memory_format=self.layout)
        self.optimizers = fused_on_cuda(self.family.build_optimizers(), self.device)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("base_lr", group["lr"])
        if self.precision == "fp16":
            self.family.grad_scaler = torch.amp.GradScaler(self.device.type)
        optim = self.config.optim
        self.ema = EMA(self.family.averaged_network(), optim.ema_power, optim.ema_max_decay)
        self.step, self.elapsed, self.wall, self.losses, self.loss_names = 0, 0.0, 0.0, {}, []
        self.guard = DivergenceGuard(type(self.family).explosion_watch)
        self.sync = SyncPolicy(self.sync_every, self.device.type)

    def _write_record(self) -> None:
        if not self.main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)  # only once every check has passed
        write_json_atomic(self.run_dir / "config.json", run_record(
            family=self.family_name, family_config=self.config.to_json(), data=self.dataset.describe(),
            seed=self.seed, budget={**self.budget.to_json(), "clock": self.unit},
            device=describe_device(self.device), threads=self.threads,
            precision=self.precision, compile=self.compile,
            distributed=distributed_record(self.world, self.device, self.batch_size),
            parameters=sum(p.numel() for p in self.family.parameters())))

    def _restore(self) -> None:
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is None:
            return
        model_state, ema_state, state = load_checkpoint(checkpoint, self.device)
        self.family.load_state_dict(model_state)
        self.ema.load_state_dict(ema_state)
        self.step, self.elapsed = restore_training_state(state, self.optimizers, self.device,
                                                         self.family.grad_scaler)
        self.wall = state.get("wall_seconds", self.elapsed)
        self.guard.load(state, read_json(self.run_dir / "config.json").get("rollbacks", []))

    def _place_data(self) -> None:
        self.batches = Batches(self.dataset, labelled=bool(self.config.data.num_classes),
                               batch_size=self.batch_size, seed=self.seed, device=self.device,
                               layout=self.layout, world=self.world, rank=self.rank)

    # ------------------------------------------------------------------------ the loop

    def train(self, on_step: StepCallback | None, *, progress: bool, every_seconds: float,
              every_steps: int | None) -> TrainResult:
        bar = ProgressBar(self.budget, self.step, self.elapsed, progress and self.main,
                          f"{self.family_name} on {self.dataset.name}")
        self.saved_at, self.saved_step, interrupted = self.elapsed, self.step, False
        self._save_first_checkpoint()
        self.family.train()
        with StopFlag() as stop, self._replicas_installed():
            while not self.budget.done(self.step, self.elapsed):
                if not self._window(bar, every_steps):
                    continue  # rolled back
                bar.update(self.step, self.elapsed, self.losses)
                asked = bool(on_step is not None and on_step(self.step, self.elapsed, self.family, self.ema))
                if distributed.broadcast_flag(asked or stop.requested):
                    interrupted = True
                    break
                if self._checkpoint_due(every_seconds, every_steps):
                    self.save()
        bar.update(self.step, self.elapsed, self.losses, force=True)
        bar.close()
        unsaved = self.step != self.saved_step or (self.main and latest_checkpoint(self.run_dir) is None)
        if distributed.broadcast_flag(unsaved):
            self.save()
        images_per_second = self.step * self.batch_size / self.elapsed if self.elapsed > 0 else 0.0
        return TrainResult(self.run_dir, self.step, self.elapsed, images_per_second, self.losses, interrupted,
                           self.wall, self.unit)

    @contextmanager
    def _replicas_installed(self):
        """DDP under torchrun (it averages the gradients in backward, for every optimiser),
        torch.compile under --compile, both, or neither, for the length of training."""
        replicas = None
        if distributed.is_distributed() or self.compile:
            replicas = {}
            for name, module in self.family.networks().items():
                if distributed.is_distributed():
                    ids = [self.device.index] if self.device.type == "cuda" else None
                    module = DistributedDataParallel(module, device_ids=ids,
                                                     process_group=distributed.process_group())
                replicas[name] = torch.compile(module) if self.compile else module
        self.family.install_replicas(replicas)
        try:
            yield
        finally:
            self.family.install_replicas(None)
            if replicas:
                # DDP wrappers sit in reference cycles: collect them now, while the process
                # group lives, not at interpreter exit after it is gone (where gloo aborts).
                del replicas
                gc.collect()

    def _window(self, bar: ProgressBar, every_steps: int | None) -> bool:
        """Steps until the sync policy's K (`training.sync`; 1 on a CPU), a checkpoint due by
        steps or the budget's end, then their losses read back at once and judged in order.
        False when one of them rolled the run back: those steps were spent all the same, and
        the clock keeps them."""
        started, wall_started = clock.now(self.unit), time.perf_counter()
        first, k, pending = self.step, self.sync.steps(), []
        while True:
            x, labels = self.batches.batch(self.step)
            progress = self.budget.progress(self.step, self.sync.estimate(self.elapsed, len(pending)))
            self._schedule_learning_rates(progress)
            pending.append(self._optimise(x, labels, progress))
            self.ema.update(self.step)
            self.step += 1
            if len(pending) >= k or self._window_ends(len(pending), every_steps):
                break
        values = self._read_losses(pending)
        seconds = self._step_seconds(clock.now(self.unit) - started)
        self.elapsed += seconds
        self.wall += time.perf_counter() - wall_started
        self.sync.measured(seconds, len(pending))
        return not self._rolled_back(values, first, bar)

    def _window_ends(self, steps: int, every_steps: int | None) -> bool:
        return (self.budget.done(self.step, self.sync.estimate(self.elapsed, steps))
                or bool(every_steps and self.step - self.saved_step >= every_steps))

    def _schedule_learning_rates(self, progress: float) -> None:
        optim = self.config.optim
        scale = learning_rate_scale(self.step, progress,
                                    optim.warmup_steps, optim.decay, optim.final_lr_fraction)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * scale * self.guard.lr_scale

    def _optimise(self, x: torch.Tensor, labels: torch.Tensor | None, progress: float) -> torch.Tensor:
        """One training step; returns its losses, left on the device."""
        self.family.training_progress = progress
        with autocast(self.device, self.precision), distributed.batch_shard(self.rank, self.world):
            losses = self.family.training_step(x, labels, self.optimizers)
        if self.family.grad_scaler is not None:
            self.family.grad_scaler.update()
        self.loss_names = list(losses)
        return torch.stack([v.detach().float() for v in losses.values()])

    def _read_losses(self, pending: list[torch.Tensor]) -> torch.Tensor:
        """A window's losses (steps × losses) on the host: the one wait for the device per
        window; under DDP the global batch's means (a NaN on any rank reaches all, so all stop
        together)."""
        values = torch.stack(pending).cpu()
        if self.world > 1:
            values = distributed.all_reduce_sum(values) / self.world
        return values

    def _step_seconds(self, seconds: float) -> float:
        """The step's cost on the budget's clock; under DDP rank 0's, which every rank's
        budget then follows, so that all ranks stop at the same step."""
        if self.world > 1:
            seconds = float(distributed.all_reduce_sum(torch.tensor([seconds * self.main], dtype=torch.float64))[0])
        return seconds

    def _rolled_back(self, values: torch.Tensor, first: int, bar: ProgressBar) -> bool:
        """The divergence rule (`training.divergence`) on the losses of steps first + 1, ...:
        False when all pass; True once the run is rolled back to its latest checkpoint with a
        lower learning rate; past MAX_ROLLBACKS, TrainingDiverged. Every rank decides alike:
        the losses are the all-reduced ones, the rule's memory comes from the checkpoints."""
        for step, row in enumerate(values.tolist(), start=first + 1):
            self.losses = self.guard.inject(step, dict(zip(self.loss_names, row)))
            reason = self.guard.verdict(self.losses)
            if reason is None:
                self.guard.accept(self.losses)
                continue
            if self.guard.exhausted:
                bar.close()
                raise TrainingDiverged(
                    f"{self.family_name}: {reason} at step {step}, after {MAX_ROLLBACKS} rollbacks; training "
                    f"stopped (the last good checkpoint, step {self.saved_step}, is in {self.run_dir})")
            self._roll_back(reason, step)
            return True
        return False

    def _roll_back(self, reason: str, step: int) -> None:
        """Back to the latest checkpoint (weights, EMA, optimisers, RNG, step), the learning
        rate scaled down; the rollback recorded in config.json before training goes on. The
        training clock is not rolled back: the discarded steps were spent."""
        model_state, ema_state, state = load_checkpoint(latest_checkpoint(self.run_dir), self.device)
        record = self.guard.roll_back(step, self.losses, reason, state)
        if self.main:
            stored = read_json(self.run_dir / "config.json")
            write_json_atomic(self.run_dir / "config.json", {**stored, "rollbacks": self.guard.rollbacks})
            print(f"trilemma: {self.family_name}: {reason} at step {record['step']}; rolled back to step "
                  f"{record['restored_step']}, learning rate x{record['lr_scale']:g} (rollback "
                  f"{len(self.guard.rollbacks)} of at most {MAX_ROLLBACKS})", file=sys.stderr, flush=True)
        self.family.load_state_dict(model_state)
        self.ema.load_state_dict(ema_state)
        self.step, _ = restore_training_state(state, self.optimizers, self.device, self.family.grad_scaler)
        self.saved_at, self.saved_step = self.elapsed, self.step

    # ------------------------------------------------------------------------ checkpoints

    def _checkpoint_due(self, every_seconds: float, every_steps: int | None) -> bool:
        if every_steps:
            return self.step - self.saved_step >= every_steps
        return self.elapsed - self.saved_at >= every_seconds

    def _save_first_checkpoint(self) -> None:
        """A checkpoint before the first step, so that a rollback always has one to go back to."""
        if distributed.broadcast_flag(self.main and latest_checkpoint(self.run_dir) is None):
            self.save()

    def save(self) -> None:
        """A checkpoint of the current step (rank 0 writes; every rank waits for it)."""
        state = training_state(
            self.step, self.elapsed, self.optimizers, self.device, losses=self.losses,
            wall_seconds=self.wall, clock=self.unit,
            grad_scaler=self.family.grad_scaler.state_dict() if self.family.grad_scaler is not None else None,
            peak_memory=peak_memory(self.device), world_size=self.world, divergence=self.guard.state())
        if self.main:
            save_checkpoint(self.run_dir, self.step, self.family.state_dict(), self.ema.state_dict(), state)
        distributed.barrier()  # nobody resumes, reads or exits before the checkpoint is whole
        self.saved_at, self.saved_step = self.elapsed, self.step
