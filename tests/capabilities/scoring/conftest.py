"""The shared trained runs (tests/conftest.py), loaded, for the capability scoring tests."""

import pytest

from trilemma.data import load_data


@pytest.fixture(scope="session")
def digits():
    return load_data("digits")


@pytest.fixture(scope="session")
def runs(loaded_run):
    """runs(name) -> a loaded run: 'vae', 'gan', 'diffusion' or 'cvae' (a conditional VAE)."""
    return loaded_run
