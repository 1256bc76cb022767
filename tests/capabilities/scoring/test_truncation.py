"""The fidelity knob: neutral is plain sampling, guidance 0 is the unconditional model, and the
sweep reports precision and recall per value."""

import numpy as np
import pytest
import torch

from trilemma.capabilities import fidelity_sweep, knob_of
from trilemma.errors import UnsupportedRequest
from trilemma.families import DataShape, build_family
from trilemma.families.capabilities import FidelityKnob
from trilemma.sampling import generate


@pytest.mark.parametrize("family, knob", [("gan", "truncation"), ("vae", "temperature")])
def test_neutral_knob_is_plain_sampling_bit_for_bit(runs, family, knob):
    run = runs(family)
    assert knob_of(run.family).name == knob and knob_of(run.family).neutral == 1.0
    # Plain sampling uses the family's default setting (ψ = 1 for the GAN, T = 0.75 for an image
    # VAE); asking for that value explicitly changes nothing, and ψ = 1 is the untruncated z.
    default = getattr(run.family.config, knob)
    plain = generate(run.family, run.normalizer, 64, seed=3)
    same = generate(run.family, run.normalizer, 64, seed=3, **{knob: default})
    sharper = generate(run.family, run.normalizer, 64, seed=3, **{knob: 0.5})
    assert np.array_equal(plain.x, same.x)
    assert not np.array_equal(plain.x, sharper.x)
    if family == "gan":
        assert default == 1.0
        z = torch.randn(64, run.family.config.latent_dim, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            untruncated = run.normalizer.from_model(run.family.generate(z, None))
        assert np.array_equal(plain.x, untruncated)


def test_guidance_zero_is_the_unconditional_prediction_and_one_the_conditional():
    torch.manual_seed(0)
    family = build_family("diffusion", DataShape("image", (1, 8, 8), num_classes=10)).eval()
    x = torch.randn(6, 1, 8, 8)
    t = torch.tensor(500)
    labels = torch.arange(6)
    null = torch.full((6,), 10)
    with torch.no_grad():
        # Random weights would make a zero-initialised output layer trivially agree; perturb them.
        for p in family.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
        unconditional = family.denoiser(x, t.expand(6), null)
        conditional = family.denoiser(x, t.expand(6), labels)
        guided_zero, nfe_zero = family.model_output(x, t, labels, 0.0)
        guided_one, nfe_one = family.model_output(x, t, labels, 1.0)
    assert not torch.allclose(unconditional, conditional)
    torch.testing.assert_close(guided_zero, unconditional, rtol=0, atol=1e-6)
    torch.testing.assert_close(guided_one, conditional, rtol=0, atol=0)
    assert (nfe_zero, nfe_one) == (2, 1)


def test_knobs_are_declared_not_guessed_from_names():
    shape = DataShape("image", (1, 8, 8))
    assert build_family("diffusion", shape).fidelity_knob() is None
    conditional = build_family("diffusion", DataShape("image", (1, 8, 8), num_classes=10))
    assert isinstance(conditional, FidelityKnob) and knob_of(conditional).name == "guidance"
    with pytest.raises(UnsupportedRequest, match="unconditional diffusion model has no fidelity"):
        knob_of(build_family("diffusion", shape))


def test_sweep_reports_precision_and_recall_per_value(runs, digits):
    run = runs("gan")
    result = fidelity_sweep(run, digits, values=[0.0, 1.0], n=200)
    assert result["knob"] == "truncation" and [r["value"] for r in result["rows"]] == [0.0, 1.0]
    collapsed, plain = result["rows"]
    for row in result["rows"]:
        assert {"precision", "recall", "density", "coverage", "fd"} <= set(row)
        assert 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
        assert row["label_agreement"] is None  # an unconditional model is asked for no class
    # ψ = 0 makes one image per class (here: one image): no diversity at all.
    assert collapsed["recall"] < plain["recall"]
    assert result["provenance"]["n_generated"] == 200 and result["provenance"]["extractor"] == "lenet-digits"


def test_truncation_cli_prints_the_table_and_writes_json(run_cli, runs, tmp_path):
    run = runs("vae")
    code, out, err = run_cli("truncation", run.run_dir, "--values", "0.5,1", "--n", 100,
                             "--json", tmp_path / "sweep.json")
    assert code == 0, err
    assert "temperature" in out and "precision" in out and (tmp_path / "sweep.json").exists()
