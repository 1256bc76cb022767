"""`trilemma compare` under torchrun: two gloo processes train one DDP model per family, split
sampling and features, and rank 0 alone writes the comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import trilemma

pytestmark = pytest.mark.slow  # real processes under torchrun


def test_compare_runs_unchanged_under_torchrun(tmp_path):
    out = tmp_path / "out"
    src = str(Path(trilemma.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "trilemma", "compare", "--data", "digits", "--steps", "6", "--samples", "40",
               "--evaluations", "2", "--families", "vae,gan", "--device", "cpu", "--quiet", "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["processes"] == 2
    assert set(results["families"]) == {"vae", "gan"}
    for family in ("vae", "gan"):
        config = json.loads((out / "runs" / f"{family}-seed0" / "config.json").read_text())
        assert config["distributed"]["world_size"] == 2
        assert results["families"][family]["steps"] == 6
    assert (out / "report.html").exists()
    # Rank 0 printed the final line; rank 1 printed nothing.
    assert done.stdout.count("report:") == 1
