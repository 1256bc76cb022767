"""The features of a user's own colour images: a network trained on the folder (a classifier with
class sub-folders, contrastive without), cached by content; and the sanity ladders, which must
pass with those features and show what random ones cannot see."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from colour_folders import write_folder
from trilemma.data import load_data
from trilemma.evaluation.features import extractor_for_dataset
from trilemma.evaluation.ladders import C_T_COPYING, C_T_FRESH, _judge, sanity_ladders
from trilemma.metrics.features import FeatureCache, RandomConvExtractor
from trilemma.metrics.features.degrade import gaussian_blur
from trilemma.metrics.features.trained import TrainedFeatureExtractor

pytestmark = pytest.mark.slow  # two feature networks trained, a minute and a half each


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    return {"labelled": load_data(str(write_folder(root / "shapes", 2000, seed=0, labelled=True))),
            "unlabelled": load_data(str(write_folder(root / "plain", 2000, seed=1, labelled=False)))}


@pytest.fixture(scope="module")
def trained(folders):
    from trilemma.clock import cpu_threads

    said = {name: [] for name in folders}
    with cpu_threads(2):  # the suite runs one test at a time: both cores for the two networks' 800 steps
        extractors = {name: extractor_for_dataset(dataset, log=said[name].append) for name, dataset in folders.items()}
    return extractors, said


def test_a_folder_without_shipped_features_gets_a_network_trained_on_its_training_split(folders, trained):
    extractors, said = trained
    labelled, unlabelled = extractors["labelled"], extractors["unlabelled"]
    assert isinstance(labelled, TrainedFeatureExtractor) and isinstance(unlabelled, TrainedFeatureExtractor)
    assert labelled.recipe.objective == "classifier" and labelled.recipe.num_classes == 4
    assert unlabelled.recipe.objective == "contrastive"
    assert "training a classifier feature network on 1600 images (800 steps" in said["labelled"][0]
    # It learnt something, on held-out images: the shapes (chance 0.25), or each image among 400 (chance 0.0025).
    assert labelled.record["heldout"]["accuracy"] > 0.9
    assert unlabelled.record["heldout"]["retrieval_top1"] > 0.5
    # Cached by content: asked again, it is read back, not trained.
    again = []
    same = extractor_for_dataset(folders["labelled"], log=again.append)
    assert again == [] and same.weights_sha256 == labelled.weights_sha256 and same.name == labelled.name
    x = folders["labelled"].x_heldout[:50]
    np.testing.assert_array_equal(same.features(x), labelled.features(x))


@pytest.mark.parametrize("name", ["labelled", "unlabelled"])
def test_the_sanity_ladders_pass_with_the_default_features_on_colour_folders(folders, trained, name):
    ladders = sanity_ladders(folders[name], trained[0][name], FeatureCache())
    assert [ladder["name"] for ladder in ladders["ladders"]] == ["blur", "noise", "classes", "copies"]
    assert ladders["untrustworthy"] == [], {ladder["name"]: ladder["figures"] for ladder in ladders["ladders"]}
    copies = ladders["ladders"][-1]["figures"]
    assert abs(copies["c_t"][0]) < C_T_FRESH and copies["c_t"][1] <= C_T_COPYING
    assert copies["authpct"][1] < copies["authpct"][0]
    blur = ladders["ladders"][0]["figures"]["fid"]
    assert blur == sorted(blur) and blur[-1] > 10 * blur[0]


def test_random_features_fail_ladders_on_the_same_folder(folders):
    ladders = sanity_ladders(folders["labelled"], RandomConvExtractor(), FeatureCache())
    assert {"precision", "recall"} <= set(ladders["untrustworthy"])


def test_blur_is_scipys_gaussian_filter():
    image = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (2, 3, 24, 24)).astype(np.float32))
    for sigma in (0.5, 1.0, 2.0):
        ours = gaussian_blur(image, sigma).numpy()
        theirs = ndimage.gaussian_filter(image.numpy().astype(np.float64), sigma=(0, 0, sigma, sigma),
                                         mode="mirror", truncate=3.0)
        np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_a_figure_moves_monotonically_only_beyond_its_noise():
    assert _judge([1.0, 2.0, 3.0], "up", strict=True, n=1000)
    assert not _judge([1.0, 2.0, 2.0], "up", strict=True, n=1000)
    assert _judge([0.96, 0.965, 0.88, 0.81], "down", strict=False, n=1000)  # a step back within one error
    assert not _judge([0.96, 0.90, 0.95, 0.80], "down", strict=False, n=1000)  # a step back of 0.05
    assert not _judge([0.96, 0.96, 0.955, 0.95], "down", strict=False, n=1000)  # never moved past two errors
    assert not _judge([0.9, float("nan")], "down", strict=False, n=1000)


def test_the_recommendation_leaves_out_what_failed_a_ladder():
    from trilemma.compare.scoring import recommend

    families = {"a": {"fid": 10.0, "precision": 0.9, "recall": 0.2, "coverage": 0.3, "samples_per_s": 100.0},
                "b": {"fid": 30.0, "precision": 0.2, "recall": 0.8, "coverage": 0.9, "samples_per_s": 100.0}}
    priorities = {"fidelity": 1.0, "diversity": 1.0}
    trusted = recommend({"families": families}, priorities)
    assert trusted["within_reach"] == ["a"] and trusted["family"] == "a"
    untrusted = recommend({"families": families, "ladders": {"untrustworthy": ["fid", "precision"]}}, priorities)
    assert untrusted["family"] == "b" and untrusted["within_reach"] == ["a", "b"]
    assert untrusted["scores"]["a"]["fidelity"] is None
    assert any("untrustworthy on this data" in r and "fid, precision" in r for r in untrusted["reasons"])


def test_the_report_shows_the_ladders_and_marks_what_failed(folders, trained, tmp_path, run_cli):
    import json

    folder = folders["labelled"].info["spec"]
    base = ["compare", "--data", folder, "--steps", 10, "--samples", 60, "--families", "vae",
            "--evaluations", 1, "--quiet"]
    code, _, err = run_cli(*base, "--out", tmp_path / "trained")
    assert code == 0, err
    results = json.loads((tmp_path / "trained" / "results.json").read_text())
    assert results["ladders"]["extractor"] == trained[0]["labelled"].name and results["ladders"]["untrustworthy"] == []
    assert "Every figure moved the way it should" in (tmp_path / "trained" / "report.html").read_text()
    code, _, err = run_cli(*base, "--out", tmp_path / "random", "--features", "random")
    assert code == 0, err
    results = json.loads((tmp_path / "random" / "results.json").read_text())
    bad = results["ladders"]["untrustworthy"]
    assert "precision" in bad and results["families"]["vae"]["fid_name"] == "FD-randconv-seed0"
    report = (tmp_path / "random" / "report.html").read_text()
    assert "Can the features see it? Sanity ladders" in report
    assert report.count("untrustworthy here: failed a sanity ladder") >= len(bad) - 1  # every row the table shows
    assert any("untrustworthy on this data" in r for r in results["recommendation"]["reasons"])


def test_evaluate_prints_the_ladders_and_marks_the_figures(folders, tmp_path, run_cli):
    folder = folders["unlabelled"].info["spec"]
    np.savez(tmp_path / "s.npz", x=folders["unlabelled"].x_heldout[:100].permute(0, 2, 3, 1).numpy())
    code, out, err = run_cli("evaluate", tmp_path / "s.npz", "--data", folder, "--features", "random", "--ladders")
    assert code == 0, err
    assert "sanity ladders (randconv-seed0" in out and "FAILS: untrustworthy on this data" in out
    assert "precision (untrustworthy here)" in out
    code, out, err = run_cli("evaluate", tmp_path / "s.npz", "--data", folder, "--features", "trained", "--ladders")
    assert code == 0, err
    assert "every figure passed its ladders" in out
    code, _, err = run_cli("evaluate", tmp_path / "s.npz", "--data", folder, "--features", tmp_path / "none.pth")
    assert code == 2 and "none.pth: no such file" in err


def test_too_few_held_out_images_give_no_ladders_and_say_why(tmp_path):
    from trilemma.cli.evaluate import format_ladders
    from trilemma.compare.ladders_section import render

    np.save(tmp_path / "small.npy", np.random.default_rng(0).integers(0, 256, (120, 16, 16, 3), dtype=np.uint8))
    dataset = load_data(str(tmp_path / "small.npy"))
    ladders = sanity_ladders(dataset, RandomConvExtractor(), FeatureCache())
    assert ladders["ladders"] == [] and ladders["untrustworthy"] == [] and "24 held-out images" in ladders["skipped"]
    assert "at least 50" in format_ladders(ladders)
    assert "No ladders: 24 held-out images" in render({"kind": "image", "ladders": ladders})
