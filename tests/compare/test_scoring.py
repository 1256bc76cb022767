"""The recommendation follows the priorities, and never picks a family far behind on quality."""

from __future__ import annotations

import pytest

from trilemma.compare.scoring import criterion_scores, recommend
from trilemma.compare.settings import parse_priorities
from trilemma.errors import UnsupportedRequest


def family(fid, precision, recall, coverage, sharpness, samples_per_s, classes=10):
    return {"fid": fid, "fid_name": "FD-lenet-mnist", "precision": precision, "recall": recall,
            "coverage": coverage, "sharpness": sharpness, "samples_per_s": samples_per_s,
            "classes_covered": classes, "num_classes": 10}


def results(gan_fid=110.0):
    """Diffusion best on quality and slow; a GAN a little behind and 300x faster; a blurry VAE."""
    return {"families": {
        "vae": family(200.0, 0.85, 0.85, 0.7, 0.45, 9000.0),
        "gan": family(gan_fid, 0.75, 0.80, 0.7, 1.05, 15000.0),
        "diffusion": family(90.0, 0.80, 0.95, 0.9, 0.95, 50.0),
    }}


def test_stressing_fidelity_favours_the_best_quality():
    assert recommend(results(), parse_priorities("fidelity=1"))["family"] == "diffusion"


def test_stressing_speed_favours_a_single_pass_family_within_reach():
    rec = recommend(results(), parse_priorities("fidelity=1,diversity=1,speed=4"))
    assert rec["family"] == "gan"
    assert any("It leads on speed" in reason for reason in rec["reasons"])


def test_speed_cannot_buy_a_family_out_of_reach():
    # The same GAN, but with three times the best FD: out of reach, however fast.
    rec = recommend(results(gan_fid=270.0), parse_priorities("fidelity=1,speed=10"))
    assert rec["family"] == "diffusion"
    assert "gan" not in rec["within_reach"] and "vae" not in rec["within_reach"]
    assert any("Out of reach" in reason for reason in rec["reasons"])


def test_scores_are_relative_to_the_best_family():
    scores = criterion_scores(results()["families"])
    assert scores["gan"]["speed"] == 1.0
    # 300x slower than the fastest: 1 + log10(1/300)/3.
    assert scores["diffusion"]["speed"] == pytest.approx(1 - 2.4771 / 3, abs=1e-3)
    assert max(s["fidelity"] for s in scores.values()) <= 1.0
    assert scores["diffusion"]["stability"] is None  # one seed: not measured


def test_stability_counts_only_when_measured():
    r = results()
    rec = recommend(r, parse_priorities("fidelity=1,stability=1"))
    assert any("stability" in reason and "--seeds" in reason for reason in rec["reasons"])
    r["families"]["diffusion"]["fid_cv"] = 0.02
    r["families"]["gan"]["fid_cv"] = 0.40
    r["families"]["vae"]["fid_cv"] = 0.05
    scores = criterion_scores(r["families"])
    assert scores["gan"]["stability"] < scores["vae"]["stability"] < scores["diffusion"]["stability"]


@pytest.mark.parametrize("text, message", [
    ("fidelity", "not CRITERION=WEIGHT"), ("speed=fast", "is not a number"),
    ("speed=-1", "finite number"), ("speed=0", "at least one weight"), ("cost=1", "not CRITERION"),
])
def test_bad_priorities_are_refused(text, message):
    with pytest.raises(UnsupportedRequest, match=message):
        parse_priorities(text)
