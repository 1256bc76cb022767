"""Tiny runs on `digits` (8×8) shared by the capability tests: seconds of training each."""

import pytest

from trilemma.data import load_data
from trilemma.sampling import load_run
from trilemma.training import Budget, train

STEPS = {"vae": 100, "gan": 60, "diffusion": 60}


@pytest.fixture(scope="session")
def digits():
    return load_data("digits")


@pytest.fixture(scope="session")
def runs(tmp_path_factory, digits):
    """Loaded unconditional runs of each family, and conditional ones, keyed 'vae', 'cvae', …"""
    folder = tmp_path_factory.mktemp("capability-runs")
    cache = {}

    def get(name: str):
        if name not in cache:
            conditional = name.startswith("c")
            family = name[1:] if conditional else name
            run_dir = folder / name
            train(family, digits, run_dir, budget=Budget(steps=STEPS[family]), conditional=conditional,
                  progress=False, seed=0, overrides={"batch_size": 32})
            cache[name] = load_run(run_dir, "cpu")
        return cache[name]

    return get
