"""The comparison runner: every family trained on the same data under the same budget, scored
during training and at its end through the one evaluation path, then the report.

Layout of the output folder::

    DIR/compare.json                 the settings (a rerun with the same ones resumes)
    DIR/runs/FAMILY-seedS/           one job's run folder (`compare.family_job`)
    DIR/features/                    features of the real data, shared by the jobs
    DIR/results.json, results.csv, report.html

A family whose evaluation.json exists is never retrained; one that stopped mid-way resumes
from its last checkpoint, and its curve from its last point.

On a CPU the jobs train side by side, one single-threaded process each (`compare.side_by_side`),
each for the steps its calibration made of the time budget (`trilemma.training.calibration`). On a GPU, and under torchrun, they
run one after another in this process: under torchrun every rank runs this same sequence,
training is one DDP model per family, sampling and feature extraction are split across the
ranks (`trilemma.distributed`), and rank 0 alone writes files and prints. With
`parallel_families` (`compare --parallel-families`) the ranks are split into groups instead and
the families train at the same time, one per group (`compare.parallel_families`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trilemma import clock, distributed
from trilemma.checkpoints import latest_checkpoint, read_json, write_json_atomic
from trilemma.compare.contention import MachineMonitor
from trilemma.compare.family_job import ComparisonInterrupted, FamilyJob, run_dir_of
from trilemma.compare.results import headline
from trilemma.compare.settings import CompareSettings
from trilemma.data import Dataset, check_output_apart, load_data
from trilemma.device import DTYPES, describe_device, resolve_device, resolve_precision
from trilemma.errors import RunError, UnsupportedRequest
from trilemma.evaluation.features import extractor_for_dataset
from trilemma.families import family_class
from trilemma.io.atomic import is_leftover, remove_leftovers
from trilemma.metrics.features import FeatureCache, FeatureExtractor
from trilemma.metrics.speed import matmul_peak_gflops
from trilemma.sampling import load_run
from trilemma.training import Budget

__all__ = ["ComparisonInterrupted", "prepare_output", "run_comparison", "run_dir_of"]

SETTINGS_FILE = "compare.json"
FEATURES = "features"  # the real data's features, cached on disk for every job


class _Log:
    """Phase lines with the elapsed time and an estimate of what is left of the comparison."""

    def __init__(self, enabled: bool, started: float | None = None):
        self.enabled = enabled and distributed.is_main()
        self.started = time.perf_counter() if started is None else started

    def __call__(self, message: str, remaining_s: float | None = None) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        eta = f" · about {_duration(remaining_s)} left" if remaining_s is not None else ""
        # One write per line: the lines of ranks that share a terminal do not interleave.
        sys.stdout.write(f"[compare {_duration(elapsed)}{eta}] {message}\n")
        sys.stdout.flush()


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
        for folder in (out_dir, out_dir / FEATURES):  # temporary files of writers killed earlier
            remove_leftovers(folder)
        write_json_atomic(stored_path, settings.to_json())  # on resume: priorities may change
    distributed.barrier()
    return resuming


def run_comparison(settings: CompareSettings, out_dir: str | Path, *, progress: bool = True,
                   dataset: Dataset | None = None, side_by_side: bool | None = None,
                   on_family_done: Callable[[dict[str, Any]], None] | None = None,
                   parallel_families: bool = False) -> dict[str, Any]:
    """Train and score every family and seed of `settings` into `out_dir`, then write
    results.json, results.csv and report.html. Returns the results (see `compare.results`).
    `dataset` is `load_data(settings.data)` when the caller has it already. `side_by_side`:
    train the jobs at once in processes of their own (by default on a CPU outside torchrun);
    otherwise one after another here, calling `on_family_done(record)` after each.
    `parallel_families`: under torchrun, train the families at once on groups of ranks."""
    from trilemma.compare.report import write_report
    from trilemma.compare.results import summarise, write_results

    out_dir = Path(out_dir)
    log = _Log(progress)
    dataset = dataset if dataset is not None else load_data(settings.data)
    check_output_apart(out_dir, settings.data)  # not inside the data folder; nothing written yet
    resuming = prepare_output(out_dir, settings)
    device = resolve_device(settings.device)
    if parallel_families and distributed.global_world_size() < 2:
        raise UnsupportedRequest(
            "--parallel-families needs torchrun with 2 or more processes, e.g. torchrun "
            "--nproc_per_node=3 -m trilemma compare --parallel-families ... (on a CPU without "
            "torchrun the families already train side by side)")
    if side_by_side is None:
        side_by_side = device.type == "cpu" and not distributed.is_distributed()
    peak, peak_precision = _calibrate(settings, device)
    log(f"{'resuming' if resuming else 'comparing'} {', '.join(settings.families)} on "
        f"{dataset.name} ({len(dataset.x_train)} training, {len(dataset.x_heldout)} held-out); "
        f"budget {_budget_text(settings, device)} per family and seed, {settings.seeds} seed(s); "
        f"device {describe_device(device).get('name', device.type)}; {peak_precision} matmul peak "
        f"{peak:.0f} GFLOP/s" + (" on one core; the families train side by side" if side_by_side else ""))
    started = time.perf_counter()
    pending = [(family, seed) for seed in range(settings.seeds) for family in settings.families
               if not (run_dir_of(out_dir, family, seed) / "evaluation.json").exists()]
    budgets = _budgets(settings, dataset, device, log) if pending else {}
    # Chosen (and, for a user's folder, trained and cached) once, before any job asks for it.
    extractor = extractor_for_dataset(dataset, settings.features, device, log) if dataset.kind == "image" else None
    if side_by_side and pending:
        from trilemma.compare.side_by_side import run_jobs

        log(f"training {', '.join(f'{f} seed {s}' for f, s in pending)} side by side", _remaining(settings, pending))
        run_jobs(settings, out_dir, pending, budgets, peak, log, verbose=log.enabled)
    elif pending and parallel_families:
        from trilemma.compare.parallel_families import run_in_parallel

        run_in_parallel(pending, out_dir, lambda jobs: _run_one_by_one(
            settings, dataset, extractor, out_dir, budgets, peak, _Log(progress, log.started), False,
            on_family_done, only=jobs), log)
    elif pending:
        _run_one_by_one(settings, dataset, extractor, out_dir, budgets, peak, log, progress, on_family_done)
    records = [_record(out_dir, family, seed, log) for seed in range(settings.seeds) for family in settings.families]
    ladders = _ladders(dataset, extractor, out_dir, log) if extractor is not None else None
    baselines = _baselines(settings, dataset, out_dir, log) if dataset.kind == "table" else None
    results = summarise(records, settings, dataset, device=describe_device(device), peak_gflops=peak,
                        peak_precision=peak_precision, ladders=ladders, baselines=baselines)
    if settings.capabilities:
        results["capabilities"] = _capabilities(settings, dataset, out_dir, log)
    results["wall_seconds_this_invocation"] = time.perf_counter() - started
    results["processes"] = distributed.world_size()
    results["parallel_families"] = parallel_families
    results["side_by_side"] = side_by_side
    if distributed.is_main():
        write_results(results, out_dir)
        log("writing report.html")
        write_report(results, out_dir)
    distributed.barrier()
    log(f"done: {out_dir / 'report.html'}; recommended for these priorities: "
        f"{results['recommendation']['family']}")
    return results


def _calibrate(settings: CompareSettings, device: torch.device) -> tuple[float, str]:
    """The matmul ceiling the families' FLOP/s are reported against, in their precision (bf16
    autocast on CUDA by default: a bf16 run against the float32 peak would look 15x better
    used than it is); on a CPU, one core's, as each family trains on one thread."""
    precision = resolve_precision(settings.precision, device)
    dtype = DTYPES.get(precision, torch.float32)
    if device.type == "cpu":
        with clock.cpu_threads(1):
            return matmul_peak_gflops(device, dtype, size=1024), precision
    return matmul_peak_gflops(device, dtype, size=8192), precision


def _budgets(settings: CompareSettings, dataset: Dataset, device: torch.device, log: _Log) -> dict[str, Budget]:
    """Each family's budget: on a CPU the steps its time budget gives on one idle core of this
    machine (`trilemma.training.calibration`), measured here, before any job starts, or read
    from the cache; the settings' own budget otherwise."""
    if device.type != "cpu" or not settings.seconds or settings.steps:
        return {}
    from trilemma.training.calibration import calibrate

    budgets = {}
    for family in settings.families:
        calibration = calibrate(family, dataset, conditional=settings.conditional,
                                overrides=dict(settings.overrides.get(family, {})),
                                precision=resolve_precision(settings.precision, device))
        budgets[family] = Budget(steps=calibration.steps(settings.seconds), cpu_seconds=settings.seconds,
                                 calibration=calibration.to_json())
        log(f"{family}: {calibration.steps_per_cpu_second:.2f} steps per CPU-second on one idle core "
            f"({'calibrated ' + calibration.measured if calibration.cached else 'measured now'}): "
            f"{budgets[family].steps} steps")
    return budgets


def _run_one_by_one(settings: CompareSettings, dataset: Dataset, extractor: FeatureExtractor | None,
                    out_dir: Path, budgets: dict[str, Budget],
                    peak: float, log: _Log, progress: bool,
                    on_family_done: Callable[[dict[str, Any]], None] | None,
                    only: list[tuple[str, int]] | None = None) -> None:
    """Every job (or those of `only`) trained and evaluated in turn in this process (with the
    other ranks of its group, under torchrun)."""
    cache = FeatureCache()
    jobs = [FamilyJob(settings, dataset, out_dir, family, seed, cache, extractor, progress=progress,
                      peak_gflops=peak, log=log, budget=budgets.get(family))
            for seed in range(settings.seeds) for family in settings.families
            if only is None or (family, seed) in only]
    for index, job in enumerate(jobs):
        label = f"{job.family_name} seed {job.seed} ({index + 1}/{len(jobs)})"
        if job.finished():
            continue
        state = "resuming training" if latest_checkpoint(job.run_dir) else "training"
        what = f"{job.budget.steps} steps" if job.budget.steps else f"{job.budget.seconds:g} s"
        log(f"{label}: {state}, {what}")
        monitor = MachineMonitor()

        def measure(monitor: MachineMonitor = monitor, key: str = job.key) -> None:
            monitor.tick(time.process_time(), [key], 1)

        measure()
        job.train(on_interval=measure)
        measure()
        if distributed.is_main():
            write_json_atomic(job.run_dir / "contention.json", monitor.report(job.key))
        log(f"{label}: sampling {settings.n_samples} and evaluating")
        record = job.evaluate()
        m = record["metrics"]
        log(f"{label}: {m.get('fid_name', 'FD')} {m['fid']:.1f}, precision {m.get('precision', float('nan')):.2f}, "
            f"recall {m.get('recall', float('nan')):.2f}, {record['speed']['samples_per_s']:.0f} samples/s")
        if on_family_done is not None:
            on_family_done(record)


def _record(out_dir: Path, family: str, seed: int, log: _Log) -> dict[str, Any]:
    """A finished job's record, with what the runner measured of the machine while it trained."""
    run_dir = run_dir_of(out_dir, family, seed)
    if not (run_dir / "evaluation.json").exists():
        raise RunError(f"{run_dir}: {family} (seed {seed}) has no evaluation.json; rerun to finish it")
    record = read_json(run_dir / "evaluation.json")
    if (run_dir / "contention.json").exists():
        record["contention"] = {**record.get("contention", {}), **read_json(run_dir / "contention.json")}
    m = record["metrics"]
    log(f"{family} seed {seed}: {headline(m)}, "
        f"{record['speed']['samples_per_s']:.0f} samples/s, {record['training']['steps']} steps")
    return record


def _ladders(dataset: Dataset, extractor: FeatureExtractor, out_dir: Path, log: _Log) -> dict[str, Any]:
    """The sanity ladders of the features in use on this data (`trilemma.evaluation.ladders`),
    measured once (rank 0 alone) and kept in ladders.json."""
    from trilemma.evaluation.ladders import sanity_ladders

    path = out_dir / "ladders.json"
    if path.exists():
        return read_json(path)
    if distributed.is_main():
        log(f"sanity ladders: what {extractor.name} can see on {dataset.name}'s held-out images")
        with distributed.rank_local():
            section = sanity_ladders(dataset, extractor, FeatureCache(out_dir / FEATURES))
        write_json_atomic(path, section)
        if section["untrustworthy"]:
            log(f"sanity ladders: untrustworthy on this data: {', '.join(section['untrustworthy'])}")
    distributed.barrier()
    return read_json(path)


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


def _baselines(settings: CompareSettings, dataset: Dataset, out_dir: Path, log: _Log) -> dict[str, Any]:
    """A table's untrained baselines and real-rows ceiling, scored once (rank 0) and kept in
    baselines.json."""
    from trilemma.compare.table_baselines import measure_baselines

    path = out_dir / "baselines.json"
    if path.exists():
        return read_json(path)
    if distributed.is_main():
        log("scoring the untrained baselines (independent marginals, Gaussian copula) and real rows")
        write_json_atomic(path, measure_baselines(dataset, settings.n_samples))
    distributed.barrier()
    return read_json(path)


def _budget_text(settings: CompareSettings, device: torch.device) -> str:
    if settings.seconds and device.type == "cpu":
        return f"the steps {settings.seconds:g} s of one idle core run"
    if settings.seconds:
        return f"{settings.seconds:g} s of training"
    return f"{settings.steps} steps of training"


def _remaining(settings: CompareSettings, pending: list[tuple[str, int]]) -> float | None:
    """Wall seconds the side-by-side training should take on an idle machine: every job's CPU
    budget over the cores, plus evaluation (longer for a family with iterative samplers)."""
    if not settings.seconds:
        return None
    cores = os.cpu_count() or 1
    evaluation = max((90.0 if family_class(f).samplers else 15.0) for f, _ in pending)
    # Processes time-sliced on fewer cores run ~20% fewer steps per CPU-second than one alone.
    sliced = 1.2 if len(pending) > cores else 1.0
    return (settings.seconds * sliced * len(pending) / min(cores, len(pending)) + evaluation
            + 5.0 * math.ceil(len(pending) / 3))
