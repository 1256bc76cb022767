"""`compare --parallel-families` under torchrun: the families train at the same time, each on
a group of ranks of its own, instead of one after another on all of them.

    torchrun --nproc_per_node=8 -m trilemma compare --parallel-families --hybrids --out DIR

The plan (`plan`): with N ranks and J jobs (family × seed), every group has the same number
of ranks, max(1, N // J), so that every family trains on the same hardware under the same
budget (a fair comparison; ranks left over stay idle and the log says so). Jobs are dealt to
the groups in turn; with fewer groups than jobs a group trains its jobs one after another.
Inside a group a job is exactly the sequential runner's: DDP over the group's ranks
(`distributed.in_group`), sampling and features split across them, its first rank writing the
run folder. A group of one rank is a single-process run, so its results equal the sequential
run's for the same seed.

Every rank then waits until every job's evaluation.json exists (the output folder must be on a
file system all nodes share, as torchrun's multi-node jobs usually have), and rank 0 writes the
results and the report.

Failures: a rank whose job raises records which family it was training in DIR/parallel/ and
exits; torchrun then stops the others (SIGTERM). Each rank stopped that way leaves a mark
there too, and the lowest such rank prints one line naming the family of every rank that
failed or died without a mark (killed, out of memory). Nothing is lost: checkpoints are atomic,
and the same command resumes every unfinished job.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trilemma import distributed
from trilemma.checkpoints import write_json_atomic
from trilemma.compare.family_job import ComparisonInterrupted, run_dir_of
from trilemma.errors import RunError, printable

Job = tuple[str, int]  # (family, seed)

POLL_SECONDS = 2.0
MARKS = "parallel"  # DIR/parallel/: the plan, and the marks failed or stopped ranks leave
SETTLE_SECONDS = 2.0  # how long a stopped rank waits for the others' marks before naming the dead
EXIT_STOPPED = 128 + signal.SIGTERM


def plan(jobs: list[Job], world: int) -> tuple[int, list[list[Job]]]:
    """(ranks per group, each group's jobs in order): equal groups of max(1, world // jobs)
    ranks, the jobs dealt to them in turn. Groups past the jobs get none."""
    if not jobs:
        return 1, []
    size = max(1, world // len(jobs))
    groups = world // size
    return size, [jobs[g::groups] for g in range(groups)]


def run_in_parallel(jobs: list[Job], out_dir: Path, run_jobs: Callable[[list[Job]], None],
                    log: Callable[..., None]) -> None:
    """Train and evaluate `jobs` over the groups of the plan, `run_jobs(my_jobs)` running a
    group's share inside that group; return on every rank once all jobs are finished."""
    world, me = distributed.global_world_size(), distributed.global_rank()
    size, queues = plan(jobs, world)
    groups = distributed.split_ranks(size)  # every rank, in the same order
    marks = out_dir / MARKS
    if me == 0:
        marks.mkdir(exist_ok=True)
        for stale in marks.glob("*"):  # marks of an earlier launch
            stale.unlink()
        assignment = {str(r): [f"{f} seed {s}" for f, s in queue]
                      for group, queue in zip(groups, queues) for r in group.ranks}
        write_json_atomic(marks / "plan.json", {"ranks_per_group": size, "world_size": world,
                                                "assignment": assignment})
        idle = world - size * min(len(groups), len(jobs))
        log(f"{len(jobs)} job(s) over {world} ranks in groups of {size}, at the same time"
            + (f"; {idle} rank(s) idle, so that every family trains on as many" if idle else ""))
    distributed.barrier()
    watch = _StopWatch(marks, me, world, groups, queues, out_dir)
    watch.install()
    mine = next((i for i, group in enumerate(groups) if me in group.ranks), None)
    queue = queues[mine] if mine is not None and mine < len(queues) else []
    for job in queue:
        watch.current = job
        with distributed.in_group(groups[mine]):
            if distributed.is_main():
                _say(f"trilemma: rank {me} (pid {os.getpid()}): {job[0]} seed {job[1]}")
            try:
                run_jobs([job])
            except ComparisonInterrupted:  # Ctrl-C: every rank saves and stops; not a failure
                raise
            except Exception as error:
                message = f"{job[0]} seed {job[1]} failed on rank {me}: {printable(error)}"
                write_json_atomic(marks / f"failed-{me}.json", {"rank": me, "family": job[0], "seed": job[1],
                                                                 "error": message})
                raise RunError(f"{message}; rerun the same command to resume") from error
    watch.current = None
    _wait_for(jobs, out_dir)
    distributed.barrier()
    watch.uninstall()


def _say(line: str) -> None:
    """One line on stderr in one write, so that the lines of ranks sharing it stay whole."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _wait_for(jobs: list[Job], out_dir: Path) -> None:
    """Until every job's evaluation.json exists (files, not a collective: a collective would
    time out while a long family trains)."""
    while not all((run_dir_of(out_dir, f, s) / "evaluation.json").exists() for f, s in jobs):
        time.sleep(POLL_SECONDS)


class _StopWatch:
    """On torchrun's SIGTERM (it stops the ranks when one fails): leave a mark, wait for the
    others', and from the lowest marked rank name the families of the ranks that left none."""

    def __init__(self, marks: Path, me: int, world: int, groups: list[distributed.Group],
                 queues: list[list[Job]], out_dir: Path):
        self.marks, self.me, self.world, self.out_dir = marks, me, world, out_dir
        self.jobs_of = {r: queue for group, queue in zip(groups, queues) for r in group.ranks}
        self.current: Job | None = None
        self.previous: Any = None

    def install(self) -> None:
        try:
            self.previous = signal.signal(signal.SIGTERM, self._stopped)
        except ValueError:  # not the main thread
            self.previous = None

    def uninstall(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)

    def unfinished(self, rank: int) -> Job | None:
        """The job `rank` was on: the first of its share without an evaluation.json."""
        return next((job for job in self.jobs_of.get(rank, [])
                    if not (run_dir_of(self.out_dir, *job) / "evaluation.json").exists()), None)

    def _stopped(self, signum: int, frame: Any) -> None:
        try:
            (self.marks / f"stopped-{self.me}").write_text(json.dumps({"job": self.current}))
            time.sleep(SETTLE_SECONDS)
            stopped = {int(p.name.split("-")[1]) for p in self.marks.glob("stopped-*")}
            if self.me == min(stopped, default=self.me):
                _say(self.explain(stopped))
        finally:
            os._exit(EXIT_STOPPED)  # no collective may run now: a peer is gone

    def explain(self, stopped: set[int]) -> str:
        failed = {}
        for path in self.marks.glob("failed-*.json"):
            record = json.loads(path.read_text())
            failed[record["rank"]] = record["error"]
        lines = [failed[r] for r in sorted(failed)]
        for rank in range(self.world):
            job = self.unfinished(rank)
            if rank not in stopped and rank not in failed and job is not None:
                lines.append(f"rank {rank} died while training {job[0]} seed {job[1]}")
        what = "; ".join(lines) or "torchrun stopped the ranks"
        return f"trilemma: error: {what}; the comparison stopped; rerun the same command to resume"
