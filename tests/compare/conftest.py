from __future__ import annotations

import pytest

from trilemma.compare import CompareSettings, run_comparison


def small_settings(**changes) -> CompareSettings:
    """A comparison small enough for a test: 8x8 digits, a few steps, few samples."""
    base = {"data": "digits", "seconds": None, "steps": 12, "evaluations": 2, "n_samples": 60,
            "n_curve": 40, "n_nfe": 30, "nfe_steps": {"dpm-solver++": (2, 4)}, "device": "cpu",
            "precision": "fp32",
            "overrides": {"diffusion": {"channels": (8, 16), "batch_size": 32},
                          "gan": {"base_width": 8, "batch_size": 32},
                          "vae": {"base_width": 8, "batch_size": 32}}}
    base.update(changes)
    return CompareSettings(**base)


@pytest.fixture(name="small_settings")
def small_settings_fixture():
    return small_settings


@pytest.fixture(scope="session")
def small_comparison(tmp_path_factory):
    """One small comparison of the three families, with the capabilities section, shared by the
    tests that only read it."""
    out = tmp_path_factory.mktemp("compare") / "out"
    results = run_comparison(small_settings(capabilities=True), out, progress=False)
    return out, results
