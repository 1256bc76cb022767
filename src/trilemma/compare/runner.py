"""The comparison runner: every family trained on the same data under the same budget, scored
during training and at its end through the one evaluation path, then the report.

Layout of the output folder::

    DIR/compare.json                 the settings (a rerun with the same ones resumes)
    DIR/runs/FAMILY-seedS/           a `trilemma train` run folder (checkpoints, config.json)
        curve.jsonl                  quality points taken during training
        samples.npz, samples.png     the final samples
        evaluation.json              everything measured; its presence means "finished"
    DIR/results.json, results.csv, report.html

A family whose evaluation.json exists is never retrained; one that stopped mid-way resumes
from its last checkpoint, and its curve from its last point.

Under torchrun every rank runs this same sequence: training is one DDP model per family,
sampling and feature extraction are split across the ranks (`trilemma.distributed`), and rank
0 alone writes files and prints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilemma import distributed
from trilemma.checkpoints import latest_checkpoint, read_json, write_json_atomic
from trilemma.compare.curve import append_curve, cut_partial_line, read_curve
from trilemma.compare.settings import CompareSettings
from trilemma.data import Dataset, load_data
from trilemma.device import DTYPES, describe_device, resolve_device, resolve_precision
from trilemma.errors import RunError
from trilemma.evaluation import builtin_name, evaluate, fid_against_nfe
from trilemma.families import family_class
from trilemma.images import save_sample_picture
from trilemma.io import write_npz
from trilemma.io.atomic import is_leftover, remove_leftovers
from trilemma.metrics.catalogue import CURVE_KEYS
from trilemma.metrics.collapse import detect_collapse
from trilemma.metrics.features import FeatureCache, extractor_for
from trilemma.metrics.speed import matmul_peak_gflops, training_cost
from trilemma.sampling import generate, load_run
from trilemma.training import Budget, train

SETTINGS_FILE = "compare.json"
CURVE_METRICS = CURVE_KEYS  # the figures declared with curve=True


class ComparisonInterrupted(Exception):
    """Training was stopped (Ctrl-C); rerunning the same command resumes."""


def run_dir_of(out_dir: Path, family: str, seed: int) -> Path:
    return out_dir / "runs" / f"{family}-seed{seed}"


class _Log:
    """Phase lines with the elapsed time and an estimate of what is left of the comparison."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and distributed.is_main()
        self.started = time.perf_counter()

    def __call__(self, message: str, remaining_s: float | None = None) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        eta = f" · about {_duration(remaining_s)} left" if remaining_s is not None else ""
        print(f"[compare {_duration(elapsed)}{eta}] {message}", flush=True)


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"


def prepare_output(out_dir: Path, settings: CompareSettings) -> bool:
    """Create the folder, or check that it holds this very comparison; True when resuming.
    Every rank checks (so that all of them fail alike); rank 0 alone writes."""
    stored_path = out_dir / SETTINGS_FILE
    resuming = stored_path.exists()
    if resuming:
        changed = settings.differences(read_json(stored_path))
        if changed:
            raise RunError(
                f"{out_dir}: holds a comparison with other settings ({', '.join(changed)} differ); "
                "rerun it with its own settings to resume, or choose a new --out")
    elif out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"{out_dir}: is a file, not a folder")
    elif out_dir.exists() and any(not is_leftover(p.name) for p in out_dir.iterdir()):
        raise RunError(f"{out_dir}: exists and is not empty (and holds no comparison); "
                       "choose a new --out so that nothing in it is overwritten")
    distributed.barrier()  # every rank has looked before rank 0 writes
    if distributed.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out_dir)  # temporary files of writers killed on an earlier run
        write_json_atomic(stored_path, settings.to_json())  # on resume: priorities may change
    distributed.barrier()
    return resuming


def _curve_point(result: dict[str, Any], step: int, seconds: float, n: int) -> dict[str, Any]:
    metrics = result["metrics"]
    point = {"step": int(step), "train_seconds": float(seconds), "n_generated": n,
             "fid_name": metrics.get("fid_name")}
    point.update({k: metrics[k] for k in CURVE_METRICS if metrics.get(k) is not None})
    return point


class _FamilyRunner:
    """Trains, scores and records one family under one seed."""

    def __init__(self, settings: CompareSettings, dataset: Dataset, out_dir: Path, family: str,
                 seed: int, cache: FeatureCache, extractor: Any, log: _Log, progress: bool,
                 peak_gflops: float):
        self.settings, self.dataset, self.family_name, self.seed = settings, dataset, family, seed
        self.run_dir = run_dir_of(out_dir, family, seed)
        self.cache, self.extractor, self.log, self.progress = cache, extractor, log, progress
        self.peak_gflops = peak_gflops
        self.curve_path = self.run_dir / "curve.jsonl"

    @property
    def evaluation_path(self) -> Path:
        return self.run_dir / "evaluation.json"

    def finished(self) -> bool:
        return self.evaluation_path.exists()

    def _score(self, x: np.ndarray, provenance: dict[str, Any], y: np.ndarray | None = None) -> dict[str, Any]:
        return evaluate(x, self.dataset, samples_y=y, extractor=self.extractor, seed=self.seed,
                        provenance=provenance, cache=self.cache)

    def _checkpoints_due(self) -> list[float]:
        """Budget fractions at which a curve point is taken during training (not the end)."""
        k = self.settings.evaluations
        return [i / k for i in range(1, k)]

    def train(self) -> None:
        s = self.settings
        budget = Budget(steps=s.steps, seconds=s.seconds)
        if distributed.is_main():
            cut_partial_line(self.curve_path)  # left by a kill; nothing else writes here now
        curve = read_curve(self.curve_path)
        due = [f for f in self._checkpoints_due()
               if not any(abs(p.get("fraction", -1) - f) < 1e-9 for p in curve)]

        def on_step(step: int, elapsed: float, family: Any, ema: Any) -> bool:
            done = budget.progress(step, elapsed)
            while due and done >= due[0]:
                fraction = due.pop(0)
                with ema.applied():
                    samples = generate(family, self.dataset.normalizer, s.n_curve,
                                       seed=10_000 + self.seed)
                result = self._score(samples.x, {"seed": 10_000 + self.seed, "nfe": samples.nfe})
                point = _curve_point(result, step, elapsed, s.n_curve)
                point["fraction"] = fraction
                if distributed.is_main():
                    append_curve(self.curve_path, point)
                curve.append(point)
                self._report_collapse(curve)
            return False

        resume = (self.run_dir / "config.json").exists()
        if torch.device(resolve_device(s.device)).type == "cuda":
            torch.cuda.reset_peak_memory_stats()
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

    def _report_collapse(self, curve: list[dict[str, Any]]) -> None:
        """Say so as soon as the newest curve point shows collapse (trilemma.metrics.collapse)."""
        found = detect_collapse(curve)
        if found is not None and found["step"] == curve[-1]["step"]:
            self.log(f"{self.family_name} seed {self.seed}: mode collapse from step {found['step']}: "
                     + "; ".join(found["signals"]))

    def evaluate(self) -> dict[str, Any]:
        s = self.settings
        run = load_run(self.run_dir, s.device)
        family = run.family
        # One untimed batch first, so that the speed does not include one-off start-up costs.
        generate(family, run.normalizer, min(64, s.n_samples), seed=self.seed)
        samples = generate(family, run.normalizer, s.n_samples, seed=self.seed)
        provenance = {"seed": self.seed, "nfe": samples.nfe, "step": run.step,
                      **family.sampling_provenance(), "run": str(self.run_dir)}
        result = self._score(samples.x, provenance, samples.y)
        if distributed.is_main():
            arrays = {"x": samples.x} if samples.y is None else {"x": samples.x, "y": samples.y}
            write_npz(self.run_dir / "samples.npz", arrays, provenance)
            save_sample_picture(samples.x, self.run_dir / "samples.png", self.dataset.name)

        cost = training_cost(self.run_dir, peak_gflops=self.peak_gflops)
        curve = read_curve(self.curve_path)
        end = self._score(samples.x[: s.n_curve], {**provenance, "n_of_final": s.n_curve})
        end_point = _curve_point(end, cost["steps"], cost["train_seconds"], min(s.n_curve, s.n_samples))
        end_point["fraction"] = 1.0
        curve = [p for p in curve if p.get("fraction", 0) < 1.0] + [end_point]

        nfe_curve = None
        samplers = tuple(sampler for sampler in s.nfe_steps if sampler in family.samplers)
        if samplers:
            nfe_curve = fid_against_nfe(
                family, run.normalizer, self.dataset, samplers=samplers,
                steps=s.nfe_steps, n=s.n_nfe, seed=self.seed, extractor=self.extractor,
                cache=self.cache)
        parameters = int(run.config["parameters"])
        record = {
            "family": self.family_name,
            "seed": self.seed,
            "run_dir": str(self.run_dir),
            "metrics": result["metrics"],
            "details": result["details"],
            "provenance": result["provenance"],
            "notes": result["notes"],
            "speed": {"samples_per_s": samples.samples_per_second, "nfe": samples.nfe,
                      "seconds": samples.seconds, "n": s.n_samples, "batch_size": 500},
            "training": cost,
            "memory": {
                # The process's high-water mark when training stopped: cumulative over the
                # families trained before this one in the same process (CPU); on CUDA, the
                # peak allocated by this family's training alone (reset before it).
                "process_peak_rss_bytes": (cost.get("peak_memory") or {}).get("max_rss_bytes"),
                "cuda_peak_bytes": (cost.get("peak_memory") or {}).get("cuda_max_allocated_bytes"),
                # weights, gradients, two Adam moments and the EMA copy, in fp32
                "training_state_bytes": parameters * 4 * 5,
            },
            "curve": curve,
            "collapse": detect_collapse(curve),
            "nfe_curve": nfe_curve,
            "config": {"family_config": run.config["family_config"], "device": run.config["device"],
                       "precision": run.config.get("precision")},
        }
        if distributed.is_main():
            write_json_atomic(self.evaluation_path, record)
        distributed.barrier()  # every rank sees this family finished before the next starts
        return record


def run_comparison(settings: CompareSettings, out_dir: str | Path, *, progress: bool = True,
                   dataset: Dataset | None = None,
                   on_family_done: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train and score every family and seed of `settings` into `out_dir`, then write
    results.json, results.csv and report.html. Returns the results (see `compare.results`).
    `dataset` is `load_data(settings.data)` when the caller has it already."""
    from trilemma.compare.report import write_report
    from trilemma.compare.results import summarise, write_results

    out_dir = Path(out_dir)
    log = _Log(progress)
    dataset = dataset if dataset is not None else load_data(settings.data)
    resuming = prepare_output(out_dir, settings)
    device = resolve_device(settings.device)
    extractor = extractor_for(builtin_name(dataset) or "", dataset.sample_shape) if dataset.kind == "image" else None
    cache = FeatureCache()
    # The ceiling in the precision the families train in (bf16 autocast on CUDA by default):
    # a bf16 run measured against the float32 peak would look 15x better used than it is.
    peak_precision = resolve_precision(settings.precision, device)
    peak = matmul_peak_gflops(device, DTYPES.get(peak_precision, torch.float32),
                              size=8192 if device.type == "cuda" else 2048)
    log(f"{'resuming' if resuming else 'comparing'} {', '.join(settings.families)} on "
        f"{dataset.name} ({len(dataset.x_train)} training, {len(dataset.x_heldout)} held-out); "
        f"budget {_budget_text(settings)} per family and seed, {settings.seeds} seed(s); "
        f"device {describe_device(device).get('name', device.type)}; {peak_precision} matmul peak {peak:.0f} GFLOP/s")

    jobs = [_FamilyRunner(settings, dataset, out_dir, family, seed, cache, extractor, log, progress, peak)
            for seed in range(settings.seeds) for family in settings.families]
    # Seconds to sample and evaluate a family, for the time-left estimate until one is measured:
    # a family with a choice of (iterative) samplers is the slow kind.
    evaluation_guess = {name: 90.0 if family_class(name).samplers else 15.0 for name in settings.families}
    records = []
    started = time.perf_counter()
    for index, job in enumerate(jobs):
        label = f"{job.family_name} seed {job.seed} ({index + 1}/{len(jobs)})"
        if job.finished():
            log(f"{label}: finished earlier, read from {job.evaluation_path}")
            records.append(read_json(job.evaluation_path))
            continue
        remaining = _remaining(jobs[index:], settings, evaluation_guess)
        state = "resuming training" if latest_checkpoint(job.run_dir) else "training"
        log(f"{label}: {state}, {_budget_text(settings)}", remaining)
        job.train()
        log(f"{label}: sampling {settings.n_samples} and evaluating", _remaining(jobs[index:], settings, evaluation_guess, trained=True))
        t0 = time.perf_counter()
        record = job.evaluate()
        evaluation_guess[job.family_name] = time.perf_counter() - t0
        m = record["metrics"]
        log(f"{label}: {m.get('fid_name', 'FD')} {m['fid']:.1f}, precision {m.get('precision', float('nan')):.2f}, "
            f"recall {m.get('recall', float('nan')):.2f}, {record['speed']['samples_per_s']:.0f} samples/s")
        records.append(record)
        if on_family_done is not None:
            on_family_done(record)

    results = summarise(records, settings, dataset, device=describe_device(device), peak_gflops=peak,
                        peak_precision=peak_precision)
    if settings.capabilities:
        results["capabilities"] = _capabilities(settings, dataset, out_dir, log)
    results["wall_seconds_this_invocation"] = time.perf_counter() - started
    results["processes"] = distributed.world_size()
    if distributed.is_main():
        write_results(results, out_dir)
        log("writing report.html")
        write_report(results, out_dir)
    distributed.barrier()
    log(f"done: {out_dir / 'report.html'}; recommended for these priorities: "
        f"{results['recommendation']['family']}")
    return results


def _capabilities(settings: CompareSettings, dataset: Dataset, out_dir: Path, log: _Log) -> dict[str, Any]:
    """The capabilities section, measured once on the seed-0 runs (rank 0 alone; the others
    wait) and kept in capabilities.json, so that a rerun only redraws the report."""
    from trilemma.compare.capabilities_section import measure

    path = out_dir / "capabilities.json"
    if path.exists():
        log(f"capabilities: measured earlier, read from {path}")
        return read_json(path)
    section: dict[str, Any] = {}
    if distributed.is_main():
        with distributed.rank_local():
            runs = {name: load_run(run_dir_of(out_dir, name, 0), settings.device) for name in settings.families}
            section = measure(runs, dataset, conditional=settings.conditional, log=log)
        write_json_atomic(path, section)
    distributed.barrier()
    return section if distributed.is_main() else read_json(path)


def _budget_text(settings: CompareSettings) -> str:
    if settings.seconds:
        return f"{settings.seconds:g} s of training"
    return f"{settings.steps} steps of training"


def _remaining(jobs: list[_FamilyRunner], settings: CompareSettings, evaluation_guess: dict[str, float],
               trained: bool = False) -> float | None:
    if not settings.seconds:
        return None
    total = 0.0
    for i, job in enumerate(jobs):
        if job.finished():
            continue
        if not (trained and i == 0):
            total += settings.seconds
        total += evaluation_guess.get(job.family_name, 30.0)
    return total + 5.0 * math.ceil(len(jobs) / 3)
