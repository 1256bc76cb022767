import os

import pytest
import torch

# Tests share a 2-core machine; one thread each keeps them predictable.
torch.set_num_threads(int(os.environ.get("TRILEMMA_TEST_THREADS", "1")))

# The trained runs tests only read, by name: (family, data, steps, conditional, overrides). Each
# is trained once per session, when a test first asks for it (`trained_run`); tests that train
# to test training itself (resume, DDP, budgets) train their own.
RUNS = {
    # Trained just enough that DDIM inversion and inpainting mean something.
    "diffusion": ("diffusion", "digits", 150, False, {"channels": [8, 16], "batch_size": 32}),
    "vae": ("vae", "digits", 100, False, {"batch_size": 32}),
    "gan": ("gan", "digits", 60, False, {"batch_size": 32}),
    "cvae": ("vae", "digits", 100, True, {"batch_size": 32}),
    "vae-tiny": ("vae", "digits", 5, False, {"base_width": 8, "batch_size": 32}),
    "diffusion-ring8": ("diffusion", "ring8", 20, False, {}),
    # The hybrids, trained just enough to have capabilities worth calling.
    "flow": ("flow", "digits", 100, False, {"channels": [8, 16], "batch_size": 32}),
    "ddgan": ("ddgan", "digits", 40, False, {"channels": [8, 16], "discriminator_width": 8, "batch_size": 32}),
    "latent-diffusion": ("latent-diffusion", "digits", 100, False,
                         {"base_width": 8, "prior_width": 32, "batch_size": 32}),
}


@pytest.fixture(scope="session", autouse=True)
def calibration_cache(tmp_path_factory):
    """The steps-per-CPU-second calibrations of this session, kept out of the user's cache."""
    os.environ["TRILEMMA_CACHE"] = str(tmp_path_factory.mktemp("trilemma-cache"))
    yield os.environ["TRILEMMA_CACHE"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """trained_run(name) -> the run folder of RUNS[name], trained on first use."""
    from trilemma.data import load_data
    from trilemma.training import Budget, train

    folder = tmp_path_factory.mktemp("trained-runs")
    done = {}

    def get(name: str):
        if name not in done:
            family, data, steps, conditional, overrides = RUNS[name]
            torch.manual_seed(0)
            train(family, load_data(data), folder / name, budget=Budget(steps=steps), seed=0,
                  conditional=conditional, overrides=overrides, progress=False)
            done[name] = folder / name
        return done[name]

    return get


@pytest.fixture(scope="session")
def loaded_run(trained_run):
    """loaded_run(name) -> `trilemma.sampling.load_run` of trained_run(name) on the CPU, loaded once."""
    from trilemma.sampling import load_run

    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_run(trained_run(name), "cpu")
        return loaded[name]

    return get


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from trilemma.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
