"""The hybrids' promises, judged on given figures: each verdict follows its stated rule."""

import pytest

from trilemma.compare.claims import RULES


def _family(fid, nfe, samples_per_s, recall=0.5, **more):
    return {"fid": fid, "nfe": nfe, "samples_per_s": samples_per_s, "recall": recall, "fid_name": "FD", **more}


DIFFUSION = _family(40.0, 20, 10.0, recall=0.6)


@pytest.mark.parametrize("flow, verdict", [
    (_family(44.0, 9, 20.0), "supported"),   # within 15% at under half the evaluations
    (_family(50.0, 10, 20.0), "mixed"),       # fewer evaluations, FD 1.25x
    (_family(44.0, 20, 10.0), "contradicted"),  # as many evaluations
    (_family(70.0, 6, 30.0), "contradicted"),  # FD over 1.5x
])
def test_flow_reaching_diffusion_quality_in_fewer_steps(flow, verdict):
    assert RULES["few_steps"]("flow", {"diffusion": DIFFUSION, "flow": flow})[0] == verdict


@pytest.mark.parametrize("ddgan, verdict", [
    (_family(60.0, 4, 150.0, recall=0.55), "supported"),
    (_family(60.0, 4, 150.0, recall=0.3), "mixed"),   # fast, not diverse
    (_family(60.0, 4, 50.0, recall=0.55), "mixed"),   # diverse, only 5x faster
    (_family(60.0, 4, 50.0, recall=0.3), "contradicted"),
])
def test_diffusion_gan_fast_and_diverse(ddgan, verdict):
    gan = _family(80.0, 1, 5000.0, recall=0.2)
    found, evidence = RULES["fast_and_diverse"]("ddgan", {"gan": gan, "diffusion": DIFFUSION, "ddgan": ddgan})
    assert found == verdict and "the GAN's 5000" in evidence


@pytest.mark.parametrize("latent, verdict", [
    (_family(55.0, 21, 40.0, reconstruction_fid=20.0), "supported"),
    (_family(35.0, 21, 40.0), "mixed"),   # faster at no cost in FD
    (_family(55.0, 21, 15.0), "mixed"),   # faster, not 3x
    (_family(55.0, 21, 5.0), "contradicted"),
])
def test_latent_diffusion_faster_at_some_cost(latent, verdict):
    found, evidence = RULES["latent_faster"]("latent-diffusion", {"diffusion": DIFFUSION, "latent-diffusion": latent})
    assert found == verdict
    assert ("floor" in evidence) == ("reconstruction_fid" in latent)


def test_without_diffusion_the_promises_are_not_measured():
    flow = _family(44.0, 10, 20.0)
    for rule in ("few_steps", "fast_and_diverse", "latent_faster"):
        assert RULES[rule]("flow", {"flow": flow, "gan": flow})[0] == "not measured"
