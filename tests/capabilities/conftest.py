"""Digits and the shared trained runs, for the capability tests."""

import numpy as np
import pytest

from trilemma.data import load_data


@pytest.fixture(scope="session")
def digits():
    return load_data("digits")


@pytest.fixture(scope="session")
def digits_runs(trained_run):
    """Run folders of the shared trained runs (tests/conftest.py), by the keys these tests use."""
    return {"diffusion": trained_run("diffusion"), "vae": trained_run("vae"), "gan": trained_run("gan"),
            "vae-conditional": trained_run("cvae")}


@pytest.fixture(scope="session")
def families(loaded_run):
    return {key: loaded_run(key).family for key in ("diffusion", "vae", "gan")}


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
