"""`trilemma compare` with the hybrids: they train through the same runner, the report gains its
"Beyond the trilemma" section, latent diffusion reports its autoencoder's floor, and the
capabilities section measures every family on the same masked digits."""

from __future__ import annotations

import json

import pytest

from trilemma.compare import run_comparison
from trilemma.families import default_comparison, hybrid_families

SMALL_HYBRIDS = {"flow": {"channels": (8, 16), "batch_size": 32},
                 "ddgan": {"channels": (8, 16), "discriminator_width": 8, "batch_size": 32},
                 "latent-diffusion": {"base_width": 8, "prior_width": 32, "batch_size": 32}}


def test_hybrids_are_not_in_the_default_comparison_and_compare_hybrids_adds_them():
    assert hybrid_families() == ("flow", "ddgan", "latent-diffusion")
    assert not set(hybrid_families()) & set(default_comparison())
    assert hybrid_families("points") == hybrid_families("image")


@pytest.mark.slow
def test_a_comparison_with_the_hybrids(tmp_path, small_settings):
    base = small_settings()
    settings = small_settings(
        families=("diffusion", *hybrid_families()), capabilities=True,
        nfe_steps={"dpm-solver++": (2, 4), "heun": (1, 2)},
        overrides={**base.overrides, **SMALL_HYBRIDS})
    out = tmp_path / "out"
    results = run_comparison(settings, out, progress=False)
    stored = json.loads((out / "results.json").read_text())
    families = stored["families"]
    assert list(families) == ["diffusion", "flow", "ddgan", "latent-diffusion"]
    assert families["ddgan"]["nfe"] == 4 and families["flow"]["nfe"] == 9
    assert [row["nfe"] for row in families["flow"]["nfe_curve"]] == [1, 3]
    assert families["latent-diffusion"]["reconstruction_fid"] > 0
    assert families["diffusion"].get("reconstruction_fid") is None
    claims = {c["family"]: c for c in stored["claims"]}
    for name in hybrid_families():
        assert claims[name]["verdict"] in {"supported", "contradicted", "mixed"}, claims[name]
    assert set(results["capabilities"]["methods"]) == set(families)
    report = (out / "report.html").read_text()
    assert "Beyond the trilemma" in report and "What the hybrids promise" in report
    assert report.count("FD against NFE, diffusion and flow matching") == 1
