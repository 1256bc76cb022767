"""Tiny runs on `digits` (8x8), trained once per session, for the capability tests."""

import numpy as np
import pytest
import torch

from trilemma.data import load_data


@pytest.fixture(scope="session")
def digits():
    return load_data("digits")


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory, digits):
    """Run folders: a small diffusion model trained just enough that DDIM inversion means
    something (150 steps, channels 8/16), a VAE, a GAN, and a conditional VAE."""
    from trilemma.training import Budget, train

    folder = tmp_path_factory.mktemp("runs")
    specs = {
        "diffusion": ("diffusion", 150, False, {"channels": [8, 16], "batch_size": 32}),
        "vae": ("vae", 60, False, {}),
        "gan": ("gan", 30, False, {}),
        "vae-conditional": ("vae", 10, True, {}),
    }
    runs = {}
    for key, (family, steps, conditional, overrides) in specs.items():
        torch.manual_seed(0)
        train(family, digits, folder / key, budget=Budget(steps=steps), seed=0, conditional=conditional,
              overrides=overrides, progress=False)
        runs[key] = folder / key
    return runs


@pytest.fixture(scope="session")
def families(digits_runs):
    from trilemma.sampling import load_run

    return {key: load_run(path, "cpu").family for key, path in digits_runs.items()}


@pytest.fixture
def heldout(digits):
    """16 held-out digits in model space, and their uint8 NHWC pixels and labels."""
    pixels = digits.x_heldout[:16].permute(0, 2, 3, 1).numpy()
    return digits.normalizer.to_model(digits.x_heldout[:16]), pixels, digits.y_heldout[:16].numpy()


@pytest.fixture
def images_file(tmp_path, heldout):
    path = tmp_path / "digits.npz"
    _, pixels, labels = heldout
    np.savez(path, x=pixels, y=labels)
    return path
