"""Run by tests/test_distributed.py under `torchrun --standalone --nproc_per_node=2`: DDP
training of every family, a run stopped early (to resume elsewhere), split sampling.

    torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py OUT_DIR REFERENCE_RUN

Rank 1 spies on every file-writing function of the training loop and fails if one is called.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from ddp_cases import CASES, STEPS
from trilemma import distributed
from trilemma.data import load_data
from trilemma.errors import RunError, TrainingDiverged
from trilemma.metrics.features import extractor_for
from trilemma.sampling import generate, load_run
from trilemma.training import Budget, train
from trilemma.training import loop as training_loop


def main() -> None:
    torch.set_num_threads(1)
    out, reference = Path(sys.argv[1]), Path(sys.argv[2])
    writes: list[str] = []
    if os.environ["RANK"] != "0":
        for name in ("save_checkpoint", "write_json_atomic"):
            original = getattr(training_loop, name)

            def spy(*args, _name=name, _original=original, **kwargs):
                writes.append(_name)
                return _original(*args, **kwargs)

            setattr(training_loop, name, spy)

    data = {}
    for case, (family, spec, overrides) in CASES.items():
        dataset = data.setdefault(spec, load_data(spec))
        result = train(family, dataset, out / case, budget=Budget(steps=STEPS), seed=1,
                       overrides=overrides, progress=False, device="cpu")
        assert result.steps == STEPS, result.steps
    stopped = train("diffusion", data["digits"], out / "stopped", budget=Budget(steps=STEPS), seed=1,
                    overrides=CASES["diffusion"][2], progress=False, device="cpu",
                    on_step=lambda step, elapsed, family, ema: step == 3 and distributed.rank() == 1)
    assert stopped.interrupted and stopped.steps == 3  # rank 1 alone asked; both stopped
    assert not writes, f"rank {os.environ['RANK']} wrote files: {writes}"

    def poison(step, elapsed, family, ema):  # rank 1's weights alone go bad after step 2
        if step == 2 and distributed.rank() == 1:
            with torch.no_grad():
                for p in family.parameters():
                    p.fill_(float("nan"))

    try:
        train("diffusion", data["digits"], out / "diverged", budget=Budget(steps=STEPS), seed=1,
              overrides=CASES["diffusion"][2], progress=False, device="cpu", precision="bf16", on_step=poison)
        raise AssertionError("a NaN loss on rank 1 went unnoticed")
    except TrainingDiverged as error:  # on every rank, at the same step
        assert "at step 3" in str(error), error
    try:
        train("vae", data["digits"], out / "odd", budget=Budget(steps=1), overrides={"batch_size": 33},
              progress=False, device="cpu")
        raise AssertionError("batch 33 was split over 2 processes")
    except RunError as error:
        assert "does not split over 2 processes" in str(error), error

    run = load_run(reference, "cpu")
    samples = generate(run.family, run.normalizer, 11, seed=4, batch_size=3)
    extractor = extractor_for("digits", (1, 8, 8), device="cpu")
    extractor.batch_size = 16
    features = extractor.features(data["digits"].x_heldout[:50])
    with distributed.rank_local():  # rank 0 alone, no collective: must not wait for rank 1
        if distributed.is_main():
            alone = generate(run.family, run.normalizer, 5, seed=4, batch_size=3)
    if distributed.is_main():
        np.save(out / "samples.npy", samples.x)
        np.save(out / "samples-rank-local.npy", alone.x)
        np.save(out / "features.npy", features)
        (out / "world.json").write_text(json.dumps({"world_size": distributed.world_size()}))
    distributed.barrier()  # rank 1 must not tear the group down while rank 0 still writes
    distributed.shutdown()


if __name__ == "__main__":
    main()
