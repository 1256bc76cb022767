"""Each folklore claim gets the verdict its figures call for."""

from __future__ import annotations

from trilemma.compare.claims import check_claims


def entry(fid, recall, sharpness, samples_per_s, classes=10, curve=(300.0, 200.0, 150.0), nfe=1):
    points = [{"train_seconds": 10.0 * (i + 1), "fid": v} for i, v in enumerate(curve)]
    return {"fid": fid, "fid_name": "FD", "recall": recall, "precision": 0.8, "coverage": 0.8,
            "sharpness": sharpness, "samples_per_s": samples_per_s, "nfe": nfe, "classes_covered": classes,
            "num_classes": 10, "curves": [{"seed": 0, "points": points}], "fid_cv": None,
            "training_gflops_per_image": 0.01}


def verdicts(families):
    return {c["claim"]: c["verdict"] for c in check_claims({"families": families})}


def test_folklore_run_supports_the_folklore():
    v = verdicts({
        "vae": entry(200, 0.9, 0.3, 9000, curve=(300, 250, 200)),
        "gan": entry(150, 0.4, 1.0, 9000, classes=7, curve=(300, 140, 180)),
        "diffusion": entry(90, 0.92, 0.95, 40, nfe=20, curve=(400, 300, 250, 90)),
    })
    assert v["VAE samples are blurry."] == "supported"
    assert v["GANs give sharp samples."] == "supported"
    assert v["GANs collapse onto a few modes (low diversity)."] == "supported"
    assert v["GANs are unstable and hard to train."] == "supported"  # FD rose 140 -> 180
    assert v["VAEs train stably."] == "supported"
    assert v["Diffusion samples are both sharp and diverse."] == "supported"
    assert v["Diffusion sampling is slow."] == "supported"
    assert v["Diffusion is costly to train."] == "supported"  # reached FD 200 last


def test_contrary_run_contradicts_it():
    v = verdicts({
        "vae": entry(120, 0.5, 0.9, 9000, classes=8, curve=(300, 500, 120)),
        "gan": entry(150, 0.9, 0.3, 9000),
        "diffusion": entry(90, 0.92, 0.95, 9000, nfe=1, curve=(100, 95, 90)),
    })
    assert v["VAE samples are blurry."] == "contradicted"
    assert v["GANs give sharp samples."] == "contradicted"
    assert v["GANs collapse onto a few modes (low diversity)."] == "contradicted"
    assert v["VAEs train stably."] == "contradicted"
    assert v["VAEs cover the data (diverse samples)."] == "contradicted"
    assert v["Diffusion sampling is slow."] == "mixed"  # as fast as the others: not 10x slower
    assert v["Diffusion is costly to train."] == "contradicted"  # reached the target first


def test_noise_is_not_sharpness():
    v = verdicts({"gan": entry(150, 0.9, 2.5, 9000)})
    assert v["GANs give sharp samples."] == "mixed"


def claim(families, text):
    return next(c for c in check_claims({"families": families}) if c["claim"] == text)


def test_a_divergence_rollback_is_evidence_of_instability():
    steady = {"rollbacks": 0, "rollback_records": []}
    rolled = {"rollbacks": 1, "rollback_records": [
        {"seed": 0, "step": 812, "reason": "non-finite loss d_loss=nan", "restored_step": 700, "lr_scale": 0.5}]}
    families = {
        "vae": {**entry(200, 0.9, 0.3, 9000, curve=(300, 250, 200)), **rolled},
        "gan": {**entry(150, 0.9, 1.0, 9000, curve=(300, 200, 150)), **rolled},
        "diffusion": {**entry(90, 0.92, 0.95, 40, nfe=20), **steady},
    }
    unstable = claim(families, "GANs are unstable and hard to train.")
    assert unstable["verdict"] == "supported"  # no FD setback at all: the rollback decides
    assert "divergence rollbacks 1; step 812 (seed 0): non-finite loss d_loss=nan" in unstable["evidence"]
    assert claim(families, "VAEs train stably.")["verdict"] == "contradicted"
    families["gan"].update(steady)
    unstable = claim(families, "GANs are unstable and hard to train.")
    assert unstable["verdict"] == "mixed" and "divergence rollbacks 0" in unstable["evidence"]


def test_collapse_seen_during_training_supports_the_collapse_claim():
    gan = entry(150, 0.9, 1.0, 9000)  # every class, recall as good as the others' at the end
    families = {"vae": entry(200, 0.9, 0.3, 9000), "gan": gan}
    assert claim(families, "GANs collapse onto a few modes (low diversity).")["verdict"] == "contradicted"
    gan["collapse"] = [{"seed": 0, "step": 300, "after_step": 200, "recovered": True,
                        "signals": ["classes covered fell from 10 (step 200) to 6"]}]
    verdict = claim(families, "GANs collapse onto a few modes (low diversity).")
    assert verdict["verdict"] == "supported"
    assert ("collapse seen during training (seed 0) from step 300: classes covered fell from 10 "
            "(step 200) to 6, recovered by the end") in verdict["evidence"]
