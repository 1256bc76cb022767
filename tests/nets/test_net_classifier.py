"""The shipped domain classifiers and the training helpers behind them."""

import hashlib
import json

import pytest
import torch

from trilemma.data import load_data
from trilemma.metrics.features import shipped_weights_dir
from trilemma.nets.classifier import (
    ClassifierConfig,
    DomainClassifier,
    accuracy,
    load_classifier,
    random_shift,
    train_classifier,
)

SHIPPED = ("mnist", "digits")


def _record(name: str) -> dict:
    return json.loads((shipped_weights_dir() / f"lenet-{name}.json").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_match_their_recorded_hash_and_are_small(name):
    path = shipped_weights_dir() / f"lenet-{name}.safetensors"
    record = _record(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"]
    assert path.stat().st_size < 600_000  # "well under 1 MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_classifier_reaches_its_recorded_heldout_accuracy(name):
    record = _record(name)
    data = load_data(name)
    model = load_classifier(shipped_weights_dir() / f"lenet-{name}.safetensors",
                            ClassifierConfig.from_json(record["config"]))
    measured = accuracy(model, data.x_heldout, data.y_heldout)
    assert measured >= 0.97
    assert measured == pytest.approx(record["heldout_accuracy"], abs=1e-6)
    assert record["n_train"] == data.x_train.shape[0]
    assert record["n_heldout"] == data.x_heldout.shape[0]


def test_features_and_logits_have_the_configured_shapes():
    config = ClassifierConfig(in_channels=3, image_size=12, num_classes=4, width=8, feature_dim=20)
    model = DomainClassifier(config).eval()
    x = torch.rand(5, 3, 12, 12) * 2 - 1
    assert model(x).shape == (5, 4)
    features = model.features(x)
    assert features.shape == (5, 20) and (features >= 0).all()
    assert ClassifierConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="multiple of 4"):
        DomainClassifier(ClassifierConfig(image_size=10))


def test_random_shift_moves_whole_images_and_fills_with_background():
    x = torch.full((64, 1, 8, 8), -1.0)
    x[:, :, 3:5, 3:5] = 1.0  # a 2x2 bright square in the middle
    generator = torch.Generator().manual_seed(0)
    shifted = random_shift(x, 2, generator)
    assert shifted.shape == x.shape
    # Every image still holds the whole square (shift <= 2 keeps it inside) and nothing else.
    assert torch.equal((shifted == 1.0).sum(dim=(1, 2, 3)), torch.full((64,), 4))
    assert set(shifted.unique().tolist()) == {-1.0, 1.0}
    positions = {tuple(torch.nonzero(s[0] == 1.0)[0].tolist()) for s in shifted}
    assert len(positions) > 10  # offsets vary per image (25 possible)
    assert torch.equal(random_shift(x, 0, generator), x)


def _small_digits():
    data = load_data("digits")
    return data.x_train[:300], data.y_train[:300]


def test_training_is_reproducible_and_leaves_the_global_rng_alone():
    x, y = _small_digits()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = train_classifier(x, y, 10, steps=15, seed=7)
    after = torch.rand(3)
    b = train_classifier(x, y, 10, steps=15, seed=7)
    c = train_classifier(x, y, 10, steps=15, seed=8)
    assert torch.equal(before, after)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.fc.weight, c.fc.weight)
    assert not a.training


def test_training_learns_and_validates_its_inputs():
    x, y = _small_digits()
    model = train_classifier(x.numpy(), y.numpy(), 10, epochs=40, seed=0)
    assert accuracy(model, x, y) > 0.9
    with pytest.raises(ValueError, match="uint8"):
        train_classifier(x.float(), y, 10, steps=1)
    with pytest.raises(ValueError, match="labels must lie"):
        train_classifier(x, y, 5, steps=1)
    with pytest.raises(ValueError, match="epochs or steps"):
        train_classifier(x, y, 10, steps=1, epochs=1)
