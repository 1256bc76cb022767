"""One family under one seed in a comparison: trained with quality points along the way, then
sampled and scored, everything kept in its run folder so that an interrupted comparison
resumes where it stopped.

    DIR/runs/FAMILY-seedS/           a `trilemma train` run folder (checkpoints, config.json)
        curve.jsonl                  quality points taken during training
        progress.json                where it is now (phase, step, CPU time), for the runner
        machine.json                 what the machine was like while it trained
        samples.npz, samples.png     the final samples
        evaluation.json              everything measured; its presence means "finished"
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilemma import clock, distributed
from trilemma.checkpoints import read_json, write_json_atomic
from trilemma.compare.contention import load_average, matmul_gflops
from trilemma.compare.curve import append_curve, cut_partial_line, read_curve
from trilemma.compare.settings import CompareSettings
from trilemma.data import Dataset
from trilemma.device import resolve_device
from trilemma.evaluation import evaluate, fid_against_nfe
from trilemma.evaluation.likelihood import heldout_likelihood
from trilemma.images import save_sample_picture
from trilemma.io import write_npz
from trilemma.metrics.catalogue import CURVE_KEYS
from trilemma.metrics.collapse import detect_collapse
from trilemma.metrics.features import FeatureCache
from trilemma.metrics.speed import training_cost
from trilemma.sampling import generate, load_run
from trilemma.training import Budget, train

LIKELIHOOD_NOTE = {
    "image": "Held-out NLL: upper bounds on -log p in bits per dimension of [0, 256) intensities, "
             "the VAE's by importance weighting (its decoder read as a probability of the 256 grey "
             "levels), diffusion's by its variational bound on dequantised images; the two compare "
             "with each other and with published bits/dim. A GAN has no likelihood; the hybrids "
             "are not bounded here.",
    "points": "Held-out NLL: upper bounds on -log p in bits per dimension of the data's own "
              "coordinates, the VAE's by importance weighting, diffusion's by its variational bound. "
              "A GAN has no likelihood; the hybrids are not bounded here.",
}
PROGRESS_EVERY = 2.0  # wall seconds between progress.json updates
SPEED_REPEAT_SECONDS = 3.0  # sampling speed is the best of three draws when one costs less


class ComparisonInterrupted(Exception):
    """Training was stopped (Ctrl-C); rerunning the same command resumes."""


def run_dir_of(out_dir: Path, family: str, seed: int) -> Path:
    return out_dir / "runs" / f"{family}-seed{seed}"


def _curve_point(result: dict[str, Any], step: int, seconds: float, n: int) -> dict[str, Any]:
    metrics = result["metrics"]
    point = {"step": int(step), "train_seconds": float(seconds), "n_generated": n,
             "fid_name": metrics.get("fid_name")}
    point.update({k: metrics[k] for k in CURVE_KEYS if metrics.get(k) is not None})
    return point


class FamilyJob:
    """Trains, scores and records one family under one seed."""

    def __init__(self, settings: CompareSettings, dataset: Dataset, out_dir: Path, family: str,
                 seed: int, cache: FeatureCache, extractor: Any, *, progress: bool,
                 peak_gflops: float, report_progress: bool = False, log: Any = None,
                 budget: Budget | None = None):
        self.settings, self.dataset, self.family_name, self.seed = settings, dataset, family, seed
        self.run_dir = run_dir_of(out_dir, family, seed)
        self.cache, self.extractor, self.progress = cache, extractor, progress
        self.peak_gflops = peak_gflops
        self.report_progress = report_progress  # write progress.json for a runner in another process
        self.log = log  # a line of news (a collapse seen on the curve); None: keep quiet
        self.curve_path = self.run_dir / "curve.jsonl"
        self.unit = clock.unit_of(resolve_device(settings.device))
        # The settings' budget, or the steps a calibration made of its CPU time (`calibrate`).
        self.budget = budget or Budget(steps=settings.steps, seconds=settings.seconds)

    @property
    def key(self) -> str:
        return f"{self.family_name}-seed{self.seed}"

    @property
    def evaluation_path(self) -> Path:
        return self.run_dir / "evaluation.json"

    def finished(self) -> bool:
        return self.evaluation_path.exists()

    def write_progress(self, phase: str, step: int = 0, budget_seconds: float = 0.0) -> None:
        """Where this job is, and the CPU time its process has used in all, for the runner."""
        if self.report_progress and distributed.is_main() and self.run_dir.exists():
            write_json_atomic(self.run_dir / "progress.json", {
                "phase": phase, "step": step, "budget_seconds": budget_seconds,
                "process_cpu_seconds": time.process_time(), "pid": os.getpid()})

    def _score(self, x: np.ndarray, provenance: dict[str, Any], y: np.ndarray | None = None,
               copying: bool = True) -> dict[str, Any]:
        return evaluate(x, self.dataset, samples_y=y, extractor=self.extractor, seed=self.seed,
                        provenance=provenance, cache=self.cache, copying=copying)

    def _checkpoints_due(self) -> list[float]:
        """Budget fractions at which a curve point is taken during training (not the end)."""
        k = self.settings.evaluations
        return [i / k for i in range(1, k)]

    def train(self, on_interval: Any = None) -> None:
        """Train to the budget (resuming if the run folder holds a run), taking the curve's
        points on the way; `on_interval()` is called every few wall seconds (the sequential
        runner measures the machine there)."""
        s, budget = self.settings, self.budget
        if distributed.is_main():
            cut_partial_line(self.curve_path)  # left by a kill; nothing else writes here now
        curve = read_curve(self.curve_path)
        due = [f for f in self._checkpoints_due()
               if not any(abs(p.get("fraction", -1) - f) < 1e-9 for p in curve)]
        last_report = [time.perf_counter()]

        def on_step(step: int, elapsed: float, family: Any, ema: Any) -> bool:
            done = budget.progress(step, elapsed)
            while due and done >= due[0]:
                curve.append(self._curve_point_now(due.pop(0), step, elapsed, family, ema))
                self._report_collapse(curve)
            if time.perf_counter() - last_report[0] >= PROGRESS_EVERY:
                last_report[0] = time.perf_counter()
                self.write_progress("training", step, elapsed)
                if on_interval is not None:
                    on_interval()
            return False

        resume = (self.run_dir / "config.json").exists()
        if torch.device(resolve_device(s.device)).type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        before = self._machine_now()
        result = train(
            self.family_name, self.dataset, self.run_dir, budget=budget, seed=self.seed,
            device=s.device, resume=resume, precision=s.precision, conditional=s.conditional,
            overrides=dict(s.overrides.get(self.family_name, {})), progress=self.progress,
            on_step=on_step,
        )
        if result.interrupted:
            raise ComparisonInterrupted(
                f"{self.family_name} (seed {self.seed}) stopped at step {result.steps}; "
                "run the same command again to resume")
        if distributed.is_main():
            after = self._machine_now()
            write_json_atomic(self.run_dir / "machine.json", {
                **{f"{k}_before": v for k, v in before.items()}, **{f"{k}_after": v for k, v in after.items()},
                "train_budget_seconds": result.seconds, "train_wall_seconds": result.wall_seconds,
                "clock": result.clock})

    def _curve_point_now(self, fraction: float, step: int, elapsed: float, family: Any,
                         ema: Any) -> dict[str, Any]:
        s = self.settings
        with ema.applied():
            samples = generate(family, self.dataset.normalizer, s.n_curve, seed=10_000 + self.seed)
        result = self._score(samples.x, {"seed": 10_000 + self.seed, "nfe": samples.nfe}, copying=False)
        point = {**_curve_point(result, step, elapsed, s.n_curve), "fraction": fraction}
        if distributed.is_main():
            append_curve(self.curve_path, point)
        return point

    def _report_collapse(self, curve: list[dict[str, Any]]) -> None:
        """Say so as soon as the newest curve point shows collapse (trilemma.metrics.collapse)."""
        found = detect_collapse(curve)
        if self.log is not None and found is not None and found["step"] == curve[-1]["step"]:
            self.log(f"{self.family_name} seed {self.seed}: mode collapse from step {found['step']}: "
                     + "; ".join(found["signals"]))

    def _machine_now(self) -> dict[str, Any]:
        """A single-core matmul and the load average: how busy the machine is at this moment."""
        if self.unit != "cpu":
            return {"load_average": load_average()}
        return {"matmul_gflops": matmul_gflops(), "load_average": load_average()}

    def evaluate(self) -> dict[str, Any]:
        s = self.settings
        self.write_progress("evaluating")
        run = load_run(self.run_dir, s.device)
        family = run.family
        # One untimed batch first, so that the speed does not include one-off start-up costs.
        generate(family, run.normalizer, min(64, s.n_samples), seed=self.seed)
        samples = generate(family, run.normalizer, s.n_samples, seed=self.seed)
        provenance = {"seed": self.seed, "nfe": samples.nfe, "step": run.step,
                      **family.sampling_provenance(), "run": str(self.run_dir)}
        result = self._score(samples.x, provenance, samples.y)
        reconstruction = self._reconstruction_floor(run)
        likelihood = self._likelihood(run)
        if distributed.is_main():
            arrays = {"x": samples.x} if samples.y is None else {"x": samples.x, "y": samples.y}
            write_npz(self.run_dir / "samples.npz", arrays, provenance)
            if self.dataset.kind == "table":
                from trilemma.tables.writing import write_csv

                write_csv(self.dataset.decode(samples.x), self.dataset.columns, self.run_dir / "samples.csv")
            else:
                save_sample_picture(samples.x, self.run_dir / "samples.png", self.dataset.name)

        cost = training_cost(self.run_dir, peak_gflops=self.peak_gflops)
        curve = read_curve(self.curve_path)
        end = self._score(samples.x[: s.n_curve], {**provenance, "n_of_final": s.n_curve}, copying=False)
        end_point = _curve_point(end, cost["steps"], cost["train_seconds"], min(s.n_curve, s.n_samples))
        end_point["fraction"] = 1.0
        curve = [p for p in curve if p.get("fraction", 0) < 1.0] + [end_point]

        nfe_curve = None
        samplers = tuple(sampler for sampler in s.nfe_steps if sampler in family.samplers)
        if samplers:
            nfe_curve = fid_against_nfe(
                family, run.normalizer, self.dataset, samplers=samplers,
                steps=s.nfe_steps, n=s.n_nfe, seed=self.seed, extractor=self.extractor,
                cache=self.cache, clock=self.unit)
        record = self._record(run, result, samples, self._best_rate(run, samples), cost, curve, nfe_curve)
        if reconstruction is not None:
            record["reconstruction"] = reconstruction
        if likelihood is not None:
            record["likelihood"] = likelihood
            record["notes"] = [*record["notes"], LIKELIHOOD_NOTE[self.dataset.kind]]
        if distributed.is_main():
            write_json_atomic(self.evaluation_path, record)
        distributed.barrier()  # every rank sees this family finished before the next starts
        self.write_progress("done")
        return record

    @torch.no_grad()
    def _reconstruction_floor(self, run: Any) -> dict[str, Any] | None:
        """For a model of an autoencoder's latents (latent diffusion): the FD of its
        reconstructions of held-out data, scored like samples. Its samples cannot be closer to
        the data than what its decoder can express, so this is the floor on its fidelity."""
        from trilemma.families.capabilities import LatentModel

        family = run.family
        if not isinstance(family, LatentModel):
            return None
        real = self.dataset.x_heldout[: self.settings.n_samples]
        parts = [family.decode(family.encode(run.normalizer.to_model(real[i:i + 500]).to(family.device))[0])
                 for i in range(0, len(real), 500)]
        x = run.normalizer.from_model(torch.cat(parts))
        result = self._score(x, {"seed": self.seed, "reconstructions_of": "heldout"}, copying=False)
        return {"fid": result["metrics"]["fid"], "n": len(real)}

    def _likelihood(self, run: Any) -> dict[str, Any] | None:
        """The held-out likelihood bound of a family that has one (VAE, pixel diffusion), for
        an unconditional comparison: the same held-out samples for every family and seed."""
        if self.settings.conditional or self.settings.n_likelihood <= 0:
            return None
        self.write_progress("likelihood")
        return heldout_likelihood(run.family, run.normalizer, self.dataset, seed=0, n=self.settings.n_likelihood)

    def _best_rate(self, run: Any, samples: Any) -> float:
        """Samples per second of the budget's clock, the best of up to three draws of the same
        size while they stay cheap (under SPEED_REPEAT_SECONDS each): a one-pass family draws a
        thousand samples in a fraction of a second, where a context switch or a cold cache
        weighs on a single timing."""
        rates = [samples.rate(self.unit)]
        while len(rates) < 3 and len(samples.x) / rates[-1] < SPEED_REPEAT_SECONDS:
            again = generate(run.family, run.normalizer, len(samples.x), seed=self.seed)
            rates.append(again.rate(self.unit))
        return max(rates)

    def _record(self, run: Any, result: dict[str, Any], samples: Any, samples_per_s: float,
                cost: dict[str, Any], curve: list[dict[str, Any]],
                nfe_curve: list[dict[str, Any]] | None) -> dict[str, Any]:
        s, parameters = self.settings, int(run.config["parameters"])
        machine = self.run_dir / "machine.json"
        return {
            "family": self.family_name,
            "seed": self.seed,
            "run_dir": str(self.run_dir),
            "metrics": result["metrics"],
            "details": result["details"],
            "provenance": result["provenance"],
            "notes": result["notes"],
            # Samples per second of the budget's clock: per CPU-second of this (single-threaded)
            # process on a CPU, which other processes cannot take; per wall second on a GPU.
            "speed": {"samples_per_s": samples_per_s, "clock": self.unit, "nfe": samples.nfe,
                      "seconds": samples.seconds, "cpu_seconds": samples.cpu_seconds,
                      "threads": torch.get_num_threads(), "n": s.n_samples, "batch_size": 500},
            "training": cost,
            "memory": {
                # The process's high-water mark when training stopped (on a CPU each family
                # trains in a process of its own); on CUDA, the peak allocated by this
                # family's training alone (reset before it).
                "process_peak_rss_bytes": (cost.get("peak_memory") or {}).get("max_rss_bytes"),
                "cuda_peak_bytes": (cost.get("peak_memory") or {}).get("cuda_max_allocated_bytes"),
                # weights, gradients, two Adam moments and the EMA copy, in fp32
                "training_state_bytes": parameters * 4 * 5,
            },
            "contention": read_json(machine) if machine.exists() else {},
            "curve": curve,
            "collapse": detect_collapse(curve),
            "nfe_curve": nfe_curve,
            "config": {"family_config": run.config["family_config"], "device": run.config["device"],
                       "precision": run.config.get("precision")},
        }
