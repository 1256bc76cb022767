"""`compare --parallel-families` under torchrun (gloo on the CPU): the families train at the
same time on groups of ranks, give the sequential run's results, queue when ranks are fewer
than families, stop with the family named when a rank dies, and resume."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trilemma
from trilemma.cli import main
from trilemma.compare.parallel_families import plan

FAMILIES = "vae,gan,diffusion"
QUALITY = ("fid", "kid", "precision", "recall", "density", "coverage", "modes_covered",
           "high_quality_fraction", "sharpness", "near_copy_fraction", "steps", "parameters")


def _env() -> dict[str, str]:
    src = str(Path(trilemma.__file__).resolve().parents[1])
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src}


def _compare(out: Path, *extra: str, steps: int = 30, families: str = FAMILIES) -> list[str]:
    return ["-m", "trilemma", "compare", "--data", "ring8", "--steps", str(steps), "--samples", "200",
            "--evaluations", "2", "--families", families, "--device", "cpu", "--quiet", "--out", str(out), *extra]


def _torchrun(nproc: int, *args: str, launch: tuple[str, ...] = ("--standalone",)) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launch, f"--nproc_per_node={nproc}", *args]


def _quality(results: dict) -> dict:
    """What each family's samples scored (and the steps behind them), timings left out."""
    return {family: {k: figures["seeds"][0][k] for k in QUALITY} for family, figures in results["families"].items()}


def test_plan_gives_every_family_as_many_ranks_and_queues_the_rest():
    jobs = [("vae", 0), ("gan", 0), ("diffusion", 0)]
    assert plan(jobs, 3) == (1, [[("vae", 0)], [("gan", 0)], [("diffusion", 0)]])
    assert plan(jobs, 8) == (2, [[("vae", 0)], [("gan", 0)], [("diffusion", 0)], []])  # 2 ranks idle
    assert plan(jobs, 2) == (1, [[("vae", 0), ("diffusion", 0)], [("gan", 0)]])
    two_seeds = jobs + [(family, 1) for family, _ in jobs]
    assert plan(two_seeds, 4) == (1, [[("vae", 0), ("gan", 1)], [("gan", 0), ("diffusion", 1)],
                                      [("diffusion", 0)], [("vae", 1)]])
    assert plan([], 4) == (1, [])


def test_parallel_families_without_torchrun_is_refused(tmp_path, capsys):
    code = main(["compare", "--data", "ring8", "--steps", "2", "--families", "vae,gan", "--device", "cpu",
                 "--parallel-families", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--parallel-families needs torchrun" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.slow
def test_three_ranks_train_three_families_at_once_with_the_sequential_results(tmp_path):
    parallel, sequential = tmp_path / "parallel", tmp_path / "sequential"
    done = subprocess.run(_torchrun(3, *_compare(parallel, "--parallel-families")), env=_env(),
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assignment = json.loads((parallel / "parallel" / "plan.json").read_text())["assignment"]
    assert assignment == {"0": ["vae seed 0"], "1": ["gan seed 0"], "2": ["diffusion seed 0"]}
    for rank, family in enumerate(FAMILIES.split(",")):
        assert f"rank {rank} (pid" in done.stderr and f"): {family} seed 0" in done.stderr
        config = json.loads((parallel / "runs" / f"{family}-seed0" / "config.json").read_text())
        assert config["distributed"]["world_size"] == 1  # a group of one: a single-process run
    results = json.loads((parallel / "results.json").read_text())
    assert results["parallel_families"] is True and results["processes"] == 3
    assert done.stdout.count("report:") == 1  # rank 0 alone reports

    alone = subprocess.run([sys.executable, *_compare(sequential)], env=_env(), capture_output=True, text=True,
                           timeout=600, check=False)
    assert alone.returncode == 0, alone.stderr[-3000:]
    expected = json.loads((sequential / "results.json").read_text())
    assert _quality(results) == _quality(expected)
    assert results["recommendation"]["family"] == expected["recommendation"]["family"]


@pytest.mark.slow
def test_fewer_ranks_than_families_queue_and_finish(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(_torchrun(2, *_compare(out, "--parallel-families", steps=10)), env=_env(),
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assignment = json.loads((out / "parallel" / "plan.json").read_text())["assignment"]
    assert assignment == {"0": ["vae seed 0", "diffusion seed 0"], "1": ["gan seed 0"]}
    assert set(json.loads((out / "results.json").read_text())["families"]) == set(FAMILIES.split(","))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_localhost(tmp_path):
    """Two torchrun commands, as on two machines: --nnodes=2, a rank each, one rendezvous."""
    out, port = tmp_path / "out", _free_port()
    nodes = [subprocess.Popen(
        _torchrun(1, *_compare(out, "--parallel-families", steps=10),
                  launch=("--nnodes=2", f"--node_rank={node}", "--master_addr=127.0.0.1", f"--master_port={port}")),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["processes"] == 2 and set(results["families"]) == set(FAMILIES.split(","))
    assert "report:" in outputs[0][0] and "report:" not in outputs[1][0]


@pytest.mark.slow
def test_a_rank_that_dies_stops_the_run_naming_its_family_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "out"
    command = _torchrun(2, *_compare(out, "--parallel-families", steps=300, families="vae,diffusion"))
    launch = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    for line in launch.stderr:
        found = re.search(r"rank 1 \(pid (\d+)\): diffusion seed 0", line)
        if found:
            victim = int(found.group(1))
            break
    assert victim is not None
    checkpoints = out / "runs" / "diffusion-seed0" / "checkpoints"
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("step-*")) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2.0)
    os.kill(victim, signal.SIGKILL)
    _, stderr = launch.communicate(timeout=300)
    assert launch.returncode != 0
    assert "rank 1 died while training diffusion seed 0" in stderr, stderr[-3000:]
    assert not (out / "results.json").exists()

    again = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=900, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["families"]["diffusion"]["steps"] == 300


def test_the_stopped_ranks_name_the_failed_and_the_dead_ranks_families(tmp_path):
    from trilemma.compare.parallel_families import _StopWatch
    from trilemma.distributed import Group

    marks = tmp_path / "parallel"
    marks.mkdir()
    (marks / "failed-1.json").write_text(json.dumps({"rank": 1, "family": "gan", "seed": 0,
                                                     "error": "gan seed 0 failed on rank 1: out of memory"}))
    jobs = [[("vae", 0)], [("gan", 0)], [("diffusion", 0)], [("flow", 0)]]
    finished = tmp_path / "runs" / "flow-seed0"
    finished.mkdir(parents=True)
    (finished / "evaluation.json").write_text("{}")
    watch = _StopWatch(marks, 0, 4, [Group((r,)) for r in range(4)], jobs, tmp_path)
    text = watch.explain(stopped={0})
    assert text.startswith("trilemma: error: gan seed 0 failed on rank 1: out of memory; "
                           "rank 2 died while training diffusion seed 0;")
    assert "flow" not in text and "vae" not in text  # finished, or stopped by torchrun: not to blame
    assert text.endswith("rerun the same command to resume")
