"""Feature extractors, their choice, their input layouts and the feature cache."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from trilemma.data import load_data
from trilemma.errors import DataError, TrilemmaError
from trilemma.metrics.features import (
    DomainClassifierExtractor,
    FeatureCache,
    InceptionV3,
    InceptionV3Extractor,
    RandomConvExtractor,
    as_uint8_nchw,
    cached_features,
    extractor_for,
    frechet_name,
    images_sha256,
    load_inception,
)
from trilemma.metrics.features.base import file_sha256


@pytest.fixture(scope="module")
def mnist():
    return load_data("mnist")


@pytest.fixture(scope="module")
def mnist_extractor():
    return DomainClassifierExtractor("mnist")


# ----------------------------------------------------------------------------- input layouts

def test_nhwc_numpy_and_nchw_torch_inputs_give_the_same_features(mnist, mnist_extractor):
    nchw = mnist.x_heldout[:40]
    nhwc = nchw.permute(0, 2, 3, 1).numpy().copy()
    from_torch = mnist_extractor.features(nchw)
    from_numpy = mnist_extractor.features(nhwc)
    assert from_torch.dtype == np.float64 and from_torch.shape == (40, 64)
    np.testing.assert_array_equal(from_torch, from_numpy)
    # Batching must not change the result either.
    small_batches = DomainClassifierExtractor("mnist", batch_size=7).features(nhwc)
    np.testing.assert_allclose(small_batches, from_torch, rtol=1e-4, atol=1e-4)
    # A bare (N, H, W) grayscale stack and NumPy NCHW are read the same way.
    np.testing.assert_array_equal(mnist_extractor.features(nhwc[..., 0]), from_torch)
    np.testing.assert_array_equal(mnist_extractor.features(nchw.numpy()), from_torch)
    assert images_sha256(nchw) == images_sha256(nhwc)


def test_bad_image_input_is_a_one_line_data_error(mnist, mnist_extractor):
    with pytest.raises(DataError, match=r"lie in \[0, 1\]"):
        as_uint8_nchw(np.full((2, 28, 28, 1), 1.5, np.float32))
    with pytest.raises(DataError, match="non-empty"):
        as_uint8_nchw(np.zeros((0, 28, 28, 1), np.uint8))
    with pytest.raises(DataError, match=r"\(1, 28, 28\)"):
        mnist_extractor.features(np.zeros((2, 32, 32, 3), np.uint8))


# ----------------------------------------------------------------------------- domain classifier

def test_domain_classifier_probabilities_classify_the_heldout_split(mnist, mnist_extractor):
    p = mnist_extractor.probabilities(mnist.x_heldout[:200])
    assert p.shape == (200, 10) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p.argmax(axis=1) == mnist.y_heldout[:200].numpy()).mean() > 0.95
    described = mnist_extractor.describe()
    assert described["name"] == "lenet-mnist" and len(described["weights_sha256"]) == 64
    assert mnist_extractor.weights_sha256 == mnist_extractor.record["sha256"]


def test_missing_or_tampered_domain_classifier_is_refused(tmp_path):
    with pytest.raises(DataError, match="no domain classifier for 'cifar10'"):
        DomainClassifierExtractor("cifar10")
    from trilemma.metrics.features import shipped_weights_dir

    for suffix in (".json", ".safetensors"):
        data = (shipped_weights_dir() / f"lenet-digits{suffix}").read_bytes()
        (tmp_path / f"lenet-digits{suffix}").write_bytes(data)
    assert DomainClassifierExtractor("digits", weights_dir=tmp_path).dim == 64
    with open(tmp_path / "lenet-digits.safetensors", "ab") as f:
        f.write(b" ")
    with pytest.raises(DataError, match="sha256 does not match"):
        DomainClassifierExtractor("digits", weights_dir=tmp_path)


# ----------------------------------------------------------------------------- fallback

def test_random_conv_fallback_is_deterministic_and_says_what_it_is(mnist):
    images = mnist.x_heldout[:30]
    a, b = RandomConvExtractor(seed=0), RandomConvExtractor(seed=0)
    fa = a.features(images)
    np.testing.assert_array_equal(fa, b.features(images))
    assert a.weights_sha256 == b.weights_sha256
    assert fa.shape == (30, a.dim) and np.isfinite(fa).all() and fa.std(axis=0).max() > 0
    other = RandomConvExtractor(seed=1)
    assert other.name == "randconv-seed1" and other.weights_sha256 != a.weights_sha256
    assert not np.allclose(other.features(images), fa)
    assert a.name == "randconv-seed0" and "not FIDs" in a.limits
    # RGB and any image size go through the same net.
    rgb = np.random.default_rng(0).integers(0, 256, (3, 40, 24, 3), dtype=np.uint8)
    assert a.features(rgb).shape == (3, a.dim)


# ----------------------------------------------------------------------------- choice and names

def test_extractor_for_picks_domain_classifier_then_fallback():
    assert extractor_for("mnist", (1, 28, 28)).name == "lenet-mnist"
    assert extractor_for("mnist:classes=1-9", (1, 28, 28)).name == "lenet-mnist"
    assert extractor_for("digits", (1, 8, 8)).name == "lenet-digits"
    assert isinstance(extractor_for("mnist", (3, 32, 32)), RandomConvExtractor)
    assert isinstance(extractor_for("my_photos", (3, 64, 64)), RandomConvExtractor)
    assert frechet_name(extractor_for("digits", (1, 8, 8))) == "FD-lenet-digits"
    assert frechet_name(RandomConvExtractor()) == "FD-randconv-seed0"


# ----------------------------------------------------------------------------- cache

class _CountingExtractor(RandomConvExtractor):
    def __init__(self):
        super().__init__(seed=0)
        self.calls = 0

    def features(self, images):
        self.calls += 1
        return super().features(images)


def test_cache_computes_once_per_sample_set_and_persists(mnist, tmp_path):
    extractor = _CountingExtractor()
    images = mnist.x_heldout[:20]
    cache = FeatureCache(tmp_path / "cache")
    first = cached_features(extractor, images, cache)
    again = cached_features(extractor, images.permute(0, 2, 3, 1).numpy(), cache)
    assert extractor.calls == 1 and again is first and (cache.hits, cache.misses) == (1, 1)
    cached_features(extractor, mnist.x_heldout[20:40], cache)
    assert extractor.calls == 2 and len(cache) == 2
    files = sorted((tmp_path / "cache").glob("*.npz"))
    assert len(files) == 2 and all(f.name.startswith("randconv-seed0-") for f in files)

    # A new process (a fresh cache on the same folder) reads the files instead of recomputing.
    fresh_extractor, fresh_cache = _CountingExtractor(), FeatureCache(tmp_path / "cache")
    from_disk = cached_features(fresh_extractor, images, fresh_cache)
    assert fresh_extractor.calls == 0
    np.testing.assert_array_equal(from_disk, first)

    # A corrupt file is recomputed and replaced, never trusted.
    for f in files:
        f.write_bytes(b"not an npz")
    third_extractor = _CountingExtractor()
    recomputed = cached_features(third_extractor, images, FeatureCache(tmp_path / "cache"))
    assert third_extractor.calls == 1
    np.testing.assert_array_equal(recomputed, first)

    # The same images under another extractor are another entry.
    other = RandomConvExtractor(seed=1)
    assert FeatureCache.key(other, images_sha256(images)) != FeatureCache.key(
        extractor, images_sha256(images))
    # Without a cache, features are just computed.
    np.testing.assert_array_equal(cached_features(extractor, images), first)


# ----------------------------------------------------------------------------- Inception-v3

# torchvision documents 27,161,264 parameters for Inception3 with aux logits and 1000 classes.
# Its AuxLogits head: conv0 768→128 1×1 + BN, conv1 128→768 5×5 + BN, fc 768→1000.
TORCHVISION_WITH_AUX = 27_161_264
AUX_LOGITS = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)


def test_inception_layout_matches_torchvision_and_pytorch_fid():
    assert sum(p.numel() for p in InceptionV3(num_classes=1000).parameters()) == (
        TORCHVISION_WITH_AUX - AUX_LOGITS)
    model = InceptionV3()  # the FID file's 1008-way output layer
    fc_extra = 8 * 2048 + 8  # 8 more output classes than torchvision's 1000
    n_parameters = sum(p.numel() for p in model.parameters())
    assert n_parameters == TORCHVISION_WITH_AUX - AUX_LOGITS + fc_extra  # 23,850,960
    expected = model.expected_state()
    # 94 conv+BN units of 5 tensors each, plus fc weight and bias.
    assert len(expected) == 94 * 5 + 2
    assert expected["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert expected["Mixed_5b.branch1x1.conv.weight"] == (64, 192, 1, 1)
    assert expected["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert expected["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)
    assert expected["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert expected["Mixed_7a.branch7x7x3_4.conv.weight"] == (192, 192, 3, 3)
    assert expected["Mixed_7c.branch3x3dbl_3b.bn.running_var"] == (384,)
    assert expected["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
    assert expected["fc.weight"] == (1008, 2048)
    assert all(m.eps == 0.001 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # Self-consistency of the derived key set: each block's 1×1 input convs take the channels
    # the previous block concatenates.
    for block, c_in in [("Mixed_5b", 192), ("Mixed_5c", 256), ("Mixed_5d", 288),
                        ("Mixed_6b", 768), ("Mixed_7a", 768), ("Mixed_7b", 1280),
                        ("Mixed_7c", 2048)]:
        in_shapes = {s[1] for k, s in expected.items()
                     if k.startswith(block + ".") and k.endswith("_1.conv.weight")}
        assert in_shapes == {c_in}, block


def _random_inception_state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in InceptionV3().expected_state().items():
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith("conv.weight"):
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


@pytest.fixture(scope="module")
def inception_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inception")
    state = _random_inception_state()
    pth, safetensors = folder / "pt_inception-random.pth", folder / "inception.safetensors"
    torch.save(state, pth)
    save_file(state, str(safetensors))
    return state, pth, safetensors


def test_inception_loads_a_pth_and_a_safetensors_file_and_gives_2048_features(inception_files):
    state, pth, safetensors = inception_files
    extractor = InceptionV3Extractor(pth)
    loaded = extractor.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not extractor.is_reference_weights and "comparable only" in extractor.limits
    assert frechet_name(extractor) == "FID-inception"
    assert extractor.name == "inception-v3-pytorch-fid" and extractor.dim == 2048
    images = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
    features = extractor.features(images)
    assert features.shape == (2, 2048) and np.isfinite(features).all()
    assert features.std() > 0
    from_safetensors = InceptionV3Extractor(safetensors)
    assert all(torch.equal(from_safetensors.model.state_dict()[k], v) for k, v in state.items())
    # extractor_for prefers Inception whenever a weights file is given.
    chosen = extractor_for("mnist", (1, 28, 28), inception_weights=safetensors)
    assert isinstance(chosen, InceptionV3Extractor)


def test_inception_preprocessing_is_pytorch_fids(inception_files):
    """[0, 1] scaling, gray → RGB, bilinear 299×299 (align_corners=False), then [-1, 1]."""
    extractor = InceptionV3Extractor(inception_files[2])
    seen = []

    def record(x):
        seen.append(x.clone())
        return torch.zeros(x.shape[0], 2048)

    extractor.model = record
    gray = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
    extractor.features(gray)
    extractor.features(np.repeat(gray, 3, axis=-1))
    expected = F.interpolate(torch.from_numpy(gray).permute(0, 3, 1, 2).float().div(255)
                             .repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear",
                             align_corners=False) * 2 - 1
    for x in seen:
        assert x.shape == (2, 3, 299, 299)
        torch.testing.assert_close(x, expected)


def test_inception_file_errors_name_the_file_and_the_key(inception_files, tmp_path):
    state, _, _ = inception_files
    missing = dict(state)
    del missing["Mixed_6c.branch7x7_3.bn.running_mean"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(DataError, match=r"missing\.pth.*missing: Mixed_6c\.branch7x7_3\.bn"):
        load_inception(tmp_path / "missing.pth")

    wrong = dict(state)
    wrong["fc.weight"] = torch.zeros(1000, 2048)
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(DataError, match=r"wrong\.safetensors.*fc\.weight \(1000, 2048\)"):
        load_inception(tmp_path / "wrong.safetensors")

    extra = dict(state, **{"AuxLogits.fc.weight": torch.zeros(1008, 768)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(DataError, match="unexpected: AuxLogits.fc.weight"):
        load_inception(tmp_path / "extra.pth")

    (tmp_path / "garbage.pth").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(DataError, match=r"garbage\.pth: cannot read"):
        load_inception(tmp_path / "garbage.pth")
    with pytest.raises(DataError, match="no such Inception weights file"):
        InceptionV3Extractor(tmp_path / "absent.pth")

    # A pickle holding anything but tensors is refused without being unpickled.
    torch.save({"model": _Unsafe()}, tmp_path / "object.pth")
    with pytest.raises(TrilemmaError, match=r"object\.pth"):
        load_inception(tmp_path / "object.pth")
    for name in ("missing.pth", "wrong.safetensors", "extra.pth", "garbage.pth"):
        with pytest.raises(DataError) as error:
            load_inception(tmp_path / name)
        assert "\n" not in str(error.value)


class _Unsafe:
    def __reduce__(self):
        return (print, ("unpickled!",))


# ----------------------------------------------------------------------------- choosing features for a data set

def _user_images(tmp_path, n=40):
    from trilemma.data import load_data

    x = np.random.default_rng(0).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", x)
    return load_data(str(tmp_path / "images.npy"))


def test_standard_inception_is_found_in_the_hub_cache_only_with_its_published_hash(inception_files, tmp_path,
                                                                                    monkeypatch):
    import shutil

    from trilemma.evaluation import features as choice
    from trilemma.nets.inception import INCEPTION_FILE

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert choice.hub_checkpoints() == checkpoints
    dataset = _user_images(tmp_path)
    with pytest.raises(DataError, match=rf"--features inception: no {INCEPTION_FILE}.*{checkpoints}"):
        choice.extractor_for_dataset(dataset, "inception")
    checkpoints.mkdir(parents=True)
    shutil.copy(inception_files[1], checkpoints / INCEPTION_FILE)
    assert choice.standard_inception() is None  # a file of that name with another hash is not the standard one
    digest = file_sha256(checkpoints / INCEPTION_FILE)
    monkeypatch.setattr(choice, "INCEPTION_SHA256_PREFIX", digest[:8])
    assert choice.standard_inception() == checkpoints / INCEPTION_FILE
    assert isinstance(choice.extractor_for_dataset(dataset, "inception"), InceptionV3Extractor)
    # On a CPU, auto does not embed a folder at 299 x 299: too few images here to learn from, so random.
    said = []
    auto = choice.extractor_for_dataset(dataset, "auto", log=said.append)
    assert isinstance(auto, RandomConvExtractor) and "too few" in said[0]


def test_a_named_features_file_is_checked_and_named_when_wrong(inception_files, tmp_path):
    from trilemma.evaluation.features import extractor_for_dataset

    dataset = _user_images(tmp_path)
    said = []
    chosen = extractor_for_dataset(dataset, str(inception_files[2]), log=said.append)
    assert isinstance(chosen, InceptionV3Extractor)
    assert "warning" in said[0] and "is not the standard" in said[0]  # an unknown hash: allowed, stated
    with pytest.raises(DataError, match=r"--features .*nothing\.pth: no such file"):
        extractor_for_dataset(dataset, str(tmp_path / "nothing.pth"))
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"corrupt\.pth: cannot read"):
        extractor_for_dataset(dataset, str(tmp_path / "corrupt.pth"))
    save_file({"cls_token": torch.zeros(1, 1, 8), "pos_embed": torch.zeros(1, 5, 8),
               "patch_embed.proj.weight": torch.zeros(8, 3, 14, 14)}, str(tmp_path / "dinov2.safetensors"))
    with pytest.raises(DataError, match=r"dinov2\.safetensors: DINOv2 of width 8 is not supported"):
        extractor_for_dataset(dataset, str(tmp_path / "dinov2.safetensors"))
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(DataError, match=r"other\.safetensors: not pytorch-fid's Inception"):
        extractor_for_dataset(dataset, str(tmp_path / "other.safetensors"))
