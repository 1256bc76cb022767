"""The three extractors and the choice among them.

- `InceptionV3Extractor`: Inception-v3 in the pytorch-fid layout, from the user's weights file;
  its Fréchet distance is the FID of published tables.
- `DomainClassifierExtractor`: the LeNet-style classifier shipped for a built-in labelled data
  set, which also gives class probabilities.
- `RandomConvExtractor`: a fixed, seeded, untrained net for a user's folder with neither.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trilemma.errors import DataError
from trilemma.metrics.features.base import FeatureExtractor, file_sha256
from trilemma.metrics.features.images import ImageInput, as_uint8_nchw
from trilemma.nets.classifier import ClassifierConfig, load_classifier
from trilemma.nets.inception import INCEPTION_FILE, INCEPTION_SHA256_PREFIX, load_inception


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
        self.weights_sha256 = file_sha256(weights_path)
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


class StackedDigitsExtractor(FeatureExtractor):
    """Stacked MNIST (`data.stacked`): the shipped MNIST LeNet on each colour channel, its
    three feature vectors side by side, and `modes` reading each image's three digits."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 500):
        super().__init__(device, batch_size)
        self.digits = DomainClassifierExtractor("mnist", device=device, batch_size=batch_size)
        self.name = "lenet-mnist-per-channel"
        self.weights_sha256 = self.digits.weights_sha256
        self.dim = 3 * self.digits.dim
        self.limits = ("The MNIST classifier's features of each channel, concatenated: values compare between "
                       "models scored with this same extractor on stacked-mnist only.")

    def check_images(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != (3, 28, 28):
            raise DataError(f"{self.name} takes images of shape (3, 28, 28); got {tuple(x.shape[1:])}")

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.digits._embed(batch[:, c:c + 1]) for c in range(3)], dim=1)

    def modes(self, images: ImageInput) -> np.ndarray:
        """Each image's mode, 100 x red + 10 x green + blue digit as the classifier reads them."""
        x = as_uint8_nchw(images)
        self.check_images(x)
        digits = [self.digits.probabilities(x[:, c:c + 1]).argmax(axis=1) for c in range(3)]
        return 100 * digits[0] + 10 * digits[1] + digits[2]


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
        self.weights_sha256 = file_sha256(self.weights_path)
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
    if source == "stacked-mnist" and tuple(image_shape) == (3, 28, 28):
        return StackedDigitsExtractor(device=device)
    if source in available_domain_classifiers():
        extractor = DomainClassifierExtractor(source, device=device)
        if tuple(image_shape) == extractor.image_shape:
            return extractor
    return RandomConvExtractor(seed=0, device=device)

