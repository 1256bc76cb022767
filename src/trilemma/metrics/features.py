"""Feature extraction: the one place images become the vectors every feature metric reads.

Fréchet distance, KID, precision/recall, density/coverage and feature-space memorisation all
compare sets of feature vectors, so the number they give depends on the extractor as much as
on the samples. Each extractor therefore carries a `name` and a `weights_sha256` that every
result records, and a one-sentence `limits` saying what the numbers can be compared with:

- `InceptionV3Extractor`: Inception-v3 in the pytorch-fid layout, from the weights file the
  user provides. The only extractor whose Fréchet distance is a FID comparable with
  published ones (Heusel et al. 2017; pytorch-fid by Seitzer).
- `DomainClassifierExtractor`: the small LeNet-style classifier shipped for each built-in
  labelled data set (`mnist`, `digits`), trained on its training split only. The standard
  choice for MNIST-scale data; it also gives class probabilities.
- `RandomConvExtractor`: a fixed, seeded, untrained convolutional net, for a user's folder
  with neither. Random embeddings rank generative models sensibly (Naeem et al. 2020,
  "Reliable fidelity and diversity metrics for generative models", §5), but the numbers only
  compare runs scored by the same extractor on the same data.

Features are computed once per sample set and cached (`FeatureCache`, `cached_features`),
keyed by the extractor's identity and the sha256 of the image bytes.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trilemma.errors import DataError
from trilemma.io import as_uint8_nchw as io_as_uint8_nchw
from trilemma.io import images_sha256 as io_images_sha256
from trilemma.io import write_atomic
from trilemma.nets.classifier import ClassifierConfig, load_classifier
from trilemma.nets.inception import (
    INCEPTION_FILE,
    INCEPTION_SHA256_PREFIX,
    InceptionV3,
    load_inception,
)

__all__ = [
    "DomainClassifierExtractor",
    "FeatureCache",
    "FeatureExtractor",
    "InceptionV3",
    "InceptionV3Extractor",
    "RandomConvExtractor",
    "as_uint8_nchw",
    "available_domain_classifiers",
    "cached_features",
    "extractor_for",
    "frechet_name",
    "images_sha256",
    "load_inception",
    "shipped_weights_dir",
]

ImageInput = np.ndarray | torch.Tensor


# ----------------------------------------------------------------------------- image input

def as_uint8_nchw(images: ImageInput) -> torch.Tensor:
    """The uint8 (N, C, H, W) CPU tensor of images in any form `trilemma.io.as_images` reads:
    uint8 or floats in [0, 1], NHW, NHWC or NCHW (a torch tensor is NCHW). Features of float
    images are those of their 0-255 levels, as `Normalizer.from_model` rounds them."""
    return io_as_uint8_nchw(images)


def images_sha256(images: ImageInput) -> str:
    """sha256 of the canonical uint8 NCHW bytes and shape, so every layout hashes the same."""
    return io_images_sha256(images)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    from trilemma.device import resolve_device

    return resolve_device(device)


# ----------------------------------------------------------------------------- the base class

class FeatureExtractor(ABC):
    """Maps uint8 images to float64 feature vectors (n, dim).

    Subclasses set `name`, `weights_sha256`, `dim` and `limits`, and implement `_embed`, which
    receives a uint8 NCHW batch already on `self.device`. `features` accepts NHWC NumPy or
    NCHW torch input (see `as_uint8_nchw`), batches it and runs without autograd.
    """

    name: str
    weights_sha256: str
    dim: int
    limits: str

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 256):
        self.device = _device(device)
        self.batch_size = int(batch_size)

    @abstractmethod
    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        """(b, dim) features of a uint8 NCHW batch on `self.device`."""

    def check_images(self, x: torch.Tensor) -> None:
        """Raise DataError if this extractor cannot take images like `x` (uint8 NCHW)."""

    @torch.inference_mode()
    def features(self, images: ImageInput) -> np.ndarray:
        """float64 (n, dim) features of `images` (uint8, NHWC NumPy or NCHW torch)."""
        from trilemma import distributed

        x = as_uint8_nchw(images)
        self.check_images(x)
        out = np.empty((x.shape[0], self.dim), dtype=np.float64)
        # Under torchrun the batches are dealt to the ranks and gathered: same batches, same numbers.
        rank, world = distributed.work_split()
        done = []
        for start in range(0, x.shape[0], self.batch_size)[rank::world]:
            batch = x[start:start + self.batch_size].to(self.device)
            done.append((start, self._embed(batch).double().cpu().numpy()))
        if world > 1:
            done = [item for part in distributed.gather_objects(done) for item in part]
        for start, features in done:
            out[start:start + len(features)] = features
        return out

    def describe(self) -> dict:
        """What a result records about the features it was computed on."""
        return {"name": self.name, "weights_sha256": self.weights_sha256, "dim": self.dim,
                "limits": self.limits}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def frechet_name(extractor: FeatureExtractor) -> str:
    """'FID-inception' for Inception features, 'FD-<extractor name>' for any other extractor.

    Only the Inception one may be called FID: it is the distance of Heusel et al. 2017 in
    the feature space published FIDs use. Elsewhere it is a Fréchet distance (FD) whose
    values only compare within the same extractor.
    """
    if isinstance(extractor, InceptionV3Extractor):
        return "FID-inception"
    return f"FD-{extractor.name}"


# ----------------------------------------------------------------------------- domain classifier

def shipped_weights_dir() -> Path:
    """The package folder holding the shipped classifier weights and their JSON records."""
    return Path(str(resources.files("trilemma").joinpath("weights")))


class DomainClassifierExtractor(FeatureExtractor):
    """Penultimate-layer features and class probabilities of a shipped domain classifier.

    `DomainClassifierExtractor("mnist")` loads `weights/lenet-mnist.safetensors` and its JSON
    record (config, held-out accuracy, sha256), written by
    scripts/train_domain_classifiers.py. The weights file must match the recorded sha256.
    """

    def __init__(self, data_name: str, device: str | torch.device = "cpu",
                 batch_size: int = 500, weights_dir: str | Path | None = None):
        super().__init__(device, batch_size)
        folder = Path(weights_dir) if weights_dir is not None else shipped_weights_dir()
        self.name = f"lenet-{data_name}"
        record_path = folder / f"{self.name}.json"
        weights_path = folder / f"{self.name}.safetensors"
        if not record_path.is_file() or not weights_path.is_file():
            raise DataError(f"no domain classifier for '{data_name}' in {folder} "
                            f"(shipped: {', '.join(available_domain_classifiers(folder))})")
        self.record = json.loads(record_path.read_text())
        self.weights_sha256 = _file_sha256(weights_path)
        if self.weights_sha256 != self.record.get("sha256"):
            raise DataError(f"{weights_path}: sha256 does not match the one recorded in "
                            f"{record_path.name}; re-run scripts/train_domain_classifiers.py")
        self.config = ClassifierConfig.from_json(self.record["config"])
        self.model = load_classifier(weights_path, self.config, self.device)
        self.dim = self.config.feature_dim
        self.num_classes = self.config.num_classes
        self.limits = (
            f"Features of a classifier trained on {data_name}: values compare between models "
            f"scored with this same extractor (name and hash) on {data_name}, not with FIDs "
            "computed on Inception features."
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.config
        return (c.in_channels, c.image_size, c.image_size)

    def check_images(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise DataError(f"{self.name} takes images of shape (C, H, W) = {self.image_shape}; "
                            f"got {tuple(x.shape[1:])}")

    def _model_input(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float() / 127.5 - 1.0

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.features(self._model_input(batch))

    @torch.inference_mode()
    def probabilities(self, images: ImageInput) -> np.ndarray:
        """float64 (n, num_classes) softmax outputs: class histograms and classifier score."""
        x = as_uint8_nchw(images)
        self.check_images(x)
        out = []
        for start in range(0, x.shape[0], self.batch_size):
            batch = self._model_input(x[start:start + self.batch_size].to(self.device))
            out.append(torch.softmax(self.model(batch).double(), dim=1).cpu().numpy())
        return np.concatenate(out)


def available_domain_classifiers(weights_dir: str | Path | None = None) -> list[str]:
    """Data-set names with a shipped domain classifier (e.g. ['digits', 'mnist'])."""
    folder = Path(weights_dir) if weights_dir is not None else shipped_weights_dir()
    return sorted(p.stem.removeprefix("lenet-") for p in folder.glob("lenet-*.json"))


# ----------------------------------------------------------------------------- Inception-v3

class InceptionV3Extractor(FeatureExtractor):
    """2048-d pool3 features of the FID Inception network, preprocessed as pytorch-fid does.

    Images are scaled to [0, 1], grayscale repeated to three channels (pytorch-fid converts
    images to RGB), resized to 299×299 bilinearly (align_corners=False, no antialiasing),
    then mapped to [-1, 1]. With the standard weights file the Fréchet distance on these
    features is the FID of published tables (which also depends on n and the reference set).
    """

    name = "inception-v3-pytorch-fid"
    dim = 2048

    def __init__(self, weights_path: str | Path, device: str | torch.device = "cpu",
                 batch_size: int = 50):
        super().__init__(device, batch_size)
        self.weights_path = Path(weights_path).expanduser()
        self.model = load_inception(self.weights_path).to(self.device)
        self.weights_sha256 = _file_sha256(self.weights_path)
        self.is_reference_weights = self.weights_sha256.startswith(INCEPTION_SHA256_PREFIX)
        if self.is_reference_weights:
            self.limits = ("FID on the standard pytorch-fid Inception weights: comparable with "
                           "published FIDs computed with the same n and reference set.")
        else:
            self.limits = (f"The weights file's sha256 does not start with "
                           f"{INCEPTION_SHA256_PREFIX} as {INCEPTION_FILE}'s does, so these "
                           "values are comparable only with others on this same file.")

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.model(2.0 * x - 1.0)


# ----------------------------------------------------------------------------- fallback

class RandomConvExtractor(FeatureExtractor):
    """Features of a fixed, untrained convolutional net with weights drawn from `seed`.

    For a user's unlabelled images when there is no domain classifier and no Inception file.
    Images are mapped to [-1, 1], grayscale repeated to three channels, resized to 32×32
    (bilinear, antialiased); three 3×3 convolutions with ReLU and 2×2 average pooling
    (32, 64, 64 channels, He-normal weights, zero bias) are pooled to 2×2, giving 256
    features. Weights come from NumPy's PCG64 stream, which NumPy keeps stable across
    versions, so every install with the same seed computes the same features. Random
    embeddings still separate real from generated sets (Naeem et al. 2020, §5).
    """

    size = 32
    channels = (32, 64, 64)

    def __init__(self, seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 500):
        super().__init__(device, batch_size)
        self.seed = int(seed)
        self.name = f"randconv-seed{self.seed}"
        self.dim = self.channels[-1] * 4
        self.limits = (
            "Untrained random features: values compare only between sample sets scored with "
            f"this same extractor ({self.name}) against the same real data; they are not FIDs "
            "and cannot be compared with published numbers."
        )
        rng = np.random.default_rng(self.seed)
        weights, digest, c_in = [], hashlib.sha256(), 3
        for c_out in self.channels:
            fan_in = c_in * 9
            w = rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / fan_in)
            w = w.astype(np.float32)
            digest.update(w.tobytes())
            weights.append(torch.from_numpy(w).to(self.device))
            c_in = c_out
        self.weights = weights
        self.weights_sha256 = digest.hexdigest()

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float() / 127.5 - 1.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)
        for w in self.weights:
            x = F.avg_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2)
        return F.adaptive_avg_pool2d(x, 2).flatten(1)


# ----------------------------------------------------------------------------- choosing one

def extractor_for(data_name: str, image_shape: tuple[int, ...],
                  inception_weights: str | Path | None = None,
                  device: str | torch.device = "cpu") -> FeatureExtractor:
    """The extractor a report should use for data `data_name` with images of `image_shape`.

    `image_shape` is one image's (C, H, W), as `Dataset.sample_shape` gives it. Inception
    when a weights file is given (the only one comparable with published FIDs); otherwise the
    shipped domain classifier when `data_name` (a data spec's source, options ignored) names
    one and the shape matches it; otherwise the seeded random-convolution fallback.
    """
    if inception_weights is not None:
        return InceptionV3Extractor(inception_weights, device=device)
    source = data_name.split(":", 1)[0]
    if source in available_domain_classifiers():
        extractor = DomainClassifierExtractor(source, device=device)
        if tuple(image_shape) == extractor.image_shape:
            return extractor
    return RandomConvExtractor(seed=0, device=device)


# ----------------------------------------------------------------------------- caching

class FeatureCache:
    """Features keyed by extractor identity and image content, in memory and optionally on disk.

    The key is the extractor's name and weights hash plus the sha256 of the images, so a
    changed sample set or extractor can never be served stale features. With `directory`,
    each entry is also written as `<key>.npz` (read back with allow_pickle=False), so a report
    re-run over the same samples does not recompute. Arrays are returned as stored: callers
    must not modify them in place.
    """

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory).expanduser() if directory is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(extractor: FeatureExtractor, images_digest: str) -> str:
        return f"{extractor.name}-{extractor.weights_sha256[:16]}-{images_digest[:32]}"

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.npz"

    def get(self, key: str, n: int | None = None, dim: int | None = None) -> np.ndarray | None:
        """The stored (n, dim) features under `key`, or None (also for an unreadable file)."""
        if key in self._memory:
            return self._memory[key]
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                array = np.asarray(data["features"], dtype=np.float64)
        except (OSError, ValueError, KeyError):
            return None  # a truncated or foreign file is recomputed and overwritten
        if array.ndim != 2 or (n is not None and array.shape[0] != n) or (
                dim is not None and array.shape[1] != dim):
            return None
        self._memory[key] = array
        return array

    def put(self, key: str, features: np.ndarray) -> None:
        self._memory[key] = features
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomically, so an interrupted run never leaves a half-written entry.
        write_atomic(path, lambda f: np.savez(f, features=features))

    def __len__(self) -> int:
        return len(self._memory)


def cached_features(extractor: FeatureExtractor, images: ImageInput,
                    cache: FeatureCache | None = None) -> np.ndarray:
    """`extractor.features(images)`, computed once per (extractor, image content) in `cache`.

    Without a cache this simply computes the features.
    """
    x = as_uint8_nchw(images)
    if cache is None:
        return extractor.features(x)
    key = cache.key(extractor, images_sha256(x))
    found = cache.get(key, n=x.shape[0], dim=extractor.dim)
    if found is not None:
        cache.hits += 1
        return found
    cache.misses += 1
    features = extractor.features(x)
    cache.put(key, features)
    return features
