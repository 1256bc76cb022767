"""On a CPU, the families of a comparison train side by side: one single-threaded process each,
all at once, so that every family shares the machine alike and the cores are all used without
intra-op threads waiting on each other (`trilemma.clock`).

The runner (this process) starts the jobs, reads each one's progress.json every couple of
seconds, charges the machine's load to the jobs that were training (`contention`), prints a
status line, and waits. A job's process dies with the runner (Linux: PR_SET_PDEATHSIG; elsewhere
it polls its parent), so that `kill -9` of the runner leaves nothing training; its checkpoints
are atomic and a rerun resumes. Ctrl-C reaches every process of the terminal's group: each job
finishes its step, saves and stops, and the runner then reports the interruption.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from trilemma.checkpoints import read_json, write_json_atomic
from trilemma.clock import process_cpu_seconds
from trilemma.compare.contention import MachineMonitor
from trilemma.compare.family_job import ComparisonInterrupted, run_dir_of
from trilemma.compare.settings import CompareSettings
from trilemma.errors import RunError
from trilemma.families import family_class, register

POLL_SECONDS = 2.0
STATUS_EVERY = 20.0  # seconds between the runner's status lines
EXIT_INTERRUPTED, EXIT_ERROR = 130, 2


def run_jobs(settings: CompareSettings, out_dir: Path, jobs: list[tuple[str, int]], budgets: dict[str, Any],
             peak_gflops: float, log: Callable[..., None], *, verbose: bool = True) -> None:
    """Train and evaluate every (family, seed) of `jobs` in a process of its own, all at once;
    returns when all are done. Raises ComparisonInterrupted after Ctrl-C and RunError naming
    the family when a job fails."""
    context = multiprocessing.get_context("spawn")
    processes = {}
    for family, seed in jobs:
        # The family's class travels (by reference) so that a family registered by the caller, a
        # plug-in's or a test's, is known in the job's fresh process too.
        process = context.Process(target=_job_main, name=f"trilemma-{family}-seed{seed}", daemon=False,
                                  args=(asdict(settings), str(out_dir), family_class(family), seed,
                                        budgets.get(family), peak_gflops, os.getpid(), verbose))
        process.start()
        processes[(family, seed)] = process
    monitor = MachineMonitor()
    final_cpu: dict[tuple[str, int], float] = {}
    try:
        _wait(processes, out_dir, settings, budgets, monitor, final_cpu, log)
    except KeyboardInterrupt:
        for process in processes.values():
            process.join()  # each saw the same Ctrl-C: it saves and stops
        raise ComparisonInterrupted("stopped by Ctrl-C; run the same command again to resume") from None
    for (family, seed), process in processes.items():
        write_json_atomic(run_dir_of(out_dir, family, seed) / "contention.json", monitor.report(f"{family}-{seed}"))
    failed = [(key, p.exitcode) for key, p in processes.items() if p.exitcode != 0]
    if any(code == EXIT_INTERRUPTED for _, code in failed):
        raise ComparisonInterrupted("a family was stopped; run the same command again to resume")
    if failed:
        (family, seed), code = failed[0]
        raise RunError(f"{family} (seed {seed}) failed (exit code {code}): "
                       f"{_error_of(run_dir_of(out_dir, family, seed))}; rerun the same command to resume")


def _wait(processes: dict, out_dir: Path, settings: CompareSettings, budgets: dict[str, Any],
          monitor: MachineMonitor, final_cpu: dict, log: Callable[..., None]) -> None:
    last_status = time.perf_counter()
    while True:
        for key, process in processes.items():  # the kernel's count, read while the process lives
            seconds = process_cpu_seconds(process.pid)
            if seconds is not None:
                final_cpu[key] = seconds
        alive = {key for key, p in processes.items() if p.is_alive()}
        progress = {key: _progress(run_dir_of(out_dir, *key)) for key in processes}
        ours = time.process_time() + sum(final_cpu.get(key, p.get("process_cpu_seconds", 0.0))
                                         for key, p in progress.items())
        training = [f"{f}-{s}" for (f, s) in alive if progress[(f, s)].get("phase") == "training"]
        monitor.tick(ours, training, len(alive))
        if not alive:
            return
        if time.perf_counter() - last_status >= STATUS_EVERY:
            last_status = time.perf_counter()
            log(_status(progress, alive, settings, budgets))
        time.sleep(POLL_SECONDS)


def _progress(run_dir: Path) -> dict[str, Any]:
    try:
        return read_json(run_dir / "progress.json")
    except RunError:  # not written yet
        return {}


def _status(progress: dict, alive: set, settings: CompareSettings, budgets: dict[str, Any]) -> str:
    parts = []
    for (family, seed), p in sorted(progress.items()):
        phase = p.get("phase", "starting") if (family, seed) in alive else "done"
        steps = budgets[family].steps if family in budgets else settings.steps
        if phase == "training" and steps:
            phase = f"step {p.get('step', 0)}/{steps}"
        elif phase == "training":
            phase = f"{p.get('budget_seconds', 0):.0f}/{settings.seconds:g} s, step {p.get('step', 0)}"
        parts.append(f"{family}{'' if settings.seeds == 1 else f' seed {seed}'} {phase}")
    return "; ".join(parts)


def _error_of(run_dir: Path) -> str:
    path = run_dir / "error.txt"
    return path.read_text().strip() if path.exists() else "see the messages above"


def _die_with_parent(parent: int) -> None:
    """Make this process end when the runner does, even when the runner is killed with -9."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the runner died before prctl took effect
        os._exit(EXIT_ERROR)

    def watch() -> None:  # for systems without PR_SET_PDEATHSIG
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(EXIT_ERROR)

    threading.Thread(target=watch, daemon=True).start()


def _job_main(settings: dict[str, Any], out_dir: str, cls: type, seed: int, budget: Any,
              peak_gflops: float, parent: int, verbose: bool) -> None:
    """A job's process: one thread, its own copy of the data and models; the features of the real
    data come from a cache on disk that the jobs share."""
    _die_with_parent(parent)
    import torch

    from trilemma.families import registered

    family = cls.name
    if registered().get(family) is not cls:
        register(cls)

    from trilemma.compare.family_job import FamilyJob
    from trilemma.compare.runner import FEATURES
    from trilemma.data import load_data
    from trilemma.errors import TrilemmaError
    from trilemma.evaluation.features import extractor_for_dataset
    from trilemma.metrics.features import FeatureCache

    torch.set_num_threads(1)
    config = CompareSettings(**{**settings, "families": tuple(settings["families"])})
    run_dir = run_dir_of(Path(out_dir), family, seed)
    (run_dir / "error.txt").unlink(missing_ok=True)
    try:
        dataset = load_data(config.data)
        extractor = (extractor_for_dataset(dataset, config.features, log=lambda message: None)
                     if dataset.kind == "image" else None)  # chosen, and trained, by the runner
        job = FamilyJob(config, dataset, Path(out_dir), family, seed, FeatureCache(Path(out_dir) / FEATURES),
                        extractor, progress=False, peak_gflops=peak_gflops, report_progress=True, budget=budget,
                        log=(lambda message: print(f"[{family} seed {seed}] {message}", flush=True)) if verbose else None)
        if not job.finished():
            job.train()
            job.evaluate()
    except ComparisonInterrupted:
        sys.exit(EXIT_INTERRUPTED)
    except (TrilemmaError, KeyboardInterrupt) as error:
        from trilemma.io import write_text

        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "error.txt", f"{error}\n" if str(error) else "interrupted\n")
        sys.exit(EXIT_INTERRUPTED if isinstance(error, KeyboardInterrupt) else EXIT_ERROR)
