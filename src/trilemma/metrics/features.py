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
import os
import tempfile
from abc import ABC, abstractmethod
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trilemma.errors import DataError
from trilemma.nets.classifier import ClassifierConfig, load_classifier

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
    """The uint8 (N, C, H, W) CPU tensor for images given in either of trilemma's layouts.

    NumPy arrays are read as NHWC (what `trilemma sample` writes and image files hold);
    torch tensors as NCHW (what the data layer holds). A 3-D input is a stack of grayscale
    images (N, H, W). As a convenience a NumPy array whose last axis cannot be a channel
    axis (not 1 or 3) but whose second can is read as NCHW. Raises DataError for anything
    else, and for non-uint8 data: features of float images would depend on an unstated
    scaling, so the caller must quantise first (`Normalizer.from_model` does).
    """
    if isinstance(images, torch.Tensor):
        x = images.detach().cpu()
        if x.ndim == 3:
            x = x[:, None]
    else:
        array = np.asarray(images)
        if array.ndim == 3:
            array = array[:, None]
        elif array.ndim == 4 and not (array.shape[-1] not in (1, 3) and array.shape[1] in (1, 3)):
            array = array.transpose(0, 3, 1, 2)
        x = torch.from_numpy(np.ascontiguousarray(array))
    if x.dtype != torch.uint8:
        raise DataError(f"images must be uint8 (0-255) to extract features; got {x.dtype}")
    if x.ndim != 4 or x.shape[0] == 0 or x.shape[1] not in (1, 3):
        raise DataError(
            "images must be a non-empty stack of 1- or 3-channel images, NHWC (NumPy) or NCHW "
            f"(torch); got shape {tuple(images.shape)}"
        )
    # Standard NCHW strides, exactly: a transposed NHWC array with one channel counts as
    # contiguous to NumPy and torch alike, yet convolutions may then take the channels-last
    # path and round differently, so the two layouts would not give identical features.
    _, c, h, w = x.shape
    if x.stride() != (c * h * w, h * w, w, 1):
        x = x.clone(memory_format=torch.contiguous_format)
    return x


def images_sha256(images: ImageInput) -> str:
    """sha256 of the canonical uint8 NCHW bytes and shape, so both layouts hash the same."""
    x = as_uint8_nchw(images)
    digest = hashlib.sha256(repr(tuple(x.shape)).encode())
    digest.update(x.numpy().tobytes())
    return digest.hexdigest()


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
        x = as_uint8_nchw(images)
        self.check_images(x)
        out = np.empty((x.shape[0], self.dim), dtype=np.float64)
        for start in range(0, x.shape[0], self.batch_size):
            batch = x[start:start + self.batch_size].to(self.device)
            out[start:start + batch.shape[0]] = self._embed(batch).double().cpu().numpy()
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

class _ConvBN(nn.Module):
    """Convolution without bias, batch norm (eps 0.001, as TensorFlow's Inception), ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_same(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's 'SAME' average pool ignores the padded zeros; the FID weights expect that
    # (pytorch-fid patches torchvision's blocks for it), so count_include_pad must be False.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _InceptionA(nn.Module):
    """35×35 block: 1×1, 5×5, double 3×3 and pooled branches (Szegedy et al. 2016, fig. 5)."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _ConvBN(c_in, 64, 1)
        self.branch5x5_1 = _ConvBN(c_in, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_same(x)),
        ], 1)


class _InceptionB(nn.Module):
    """Grid reduction 35→17: strided 3×3, strided double 3×3 and max-pool branches."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = _ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class _InceptionC(nn.Module):
    """17×17 block with factorised 7×7 convolutions (1×7 then 7×1; Szegedy et al. 2016, fig. 6)."""

    def __init__(self, c_in: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) pairs
        self.branch1x1 = _ConvBN(c_in, 192, 1)
        self.branch7x7_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = _ConvBN(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = _ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = _ConvBN(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = _ConvBN(c7, 192, row[0], padding=row[1])
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            d7 = layer(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(_avg_pool_same(x))], 1)


class _InceptionD(nn.Module):
    """Grid reduction 17→8: strided 3×3 after 1×1, strided 3×3 after 1×7/7×1, max-pool."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = _ConvBN(c_in, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionE(nn.Module):
    """8×8 block with expanded 1×3 / 3×1 branches (Szegedy et al. 2016, fig. 7).

    `pool` is 'avg' for Mixed_7b and 'max' for Mixed_7c: the TensorFlow graph the FID
    weights come from max-pools in the last block, and pytorch-fid reproduces that quirk.
    """

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = _ConvBN(c_in, 320, 1)
        self.branch3x3_1 = _ConvBN(c_in, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.pool == "max":
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            pooled = _avg_pool_same(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(s), self.branch3x3_2b(s),
            self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
            self.branch_pool(pooled),
        ], 1)


class InceptionV3(nn.Module):
    """Inception-v3 (Szegedy et al. 2016) with the FID variants of its blocks, without aux logits.

    Module and parameter names follow torchvision's `Inception3` as patched by pytorch-fid,
    so the state dict of `pt_inception-2015-12-05-6726825d.pth` loads as is (1008 classes:
    the TensorFlow 2015 graph's output layer). `forward` takes 3×299×299 input in [-1, 1] and
    returns the 2048-d pool3 features; `fc` is kept only so the file's keys all have a home.
    """

    def __init__(self, num_classes: int = 1008):
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _InceptionA(192, pool_features=32)
        self.Mixed_5c = _InceptionA(256, pool_features=64)
        self.Mixed_5d = _InceptionA(288, pool_features=64)
        self.Mixed_6a = _InceptionB(288)
        self.Mixed_6b = _InceptionC(768, channels_7x7=128)
        self.Mixed_6c = _InceptionC(768, channels_7x7=160)
        self.Mixed_6d = _InceptionC(768, channels_7x7=160)
        self.Mixed_6e = _InceptionC(768, channels_7x7=192)
        self.Mixed_7a = _InceptionD(768)
        self.Mixed_7b = _InceptionE(1280, pool="avg")
        self.Mixed_7c = _InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def expected_state(self) -> dict[str, tuple[int, ...]]:
        """Key → shape of every tensor a weights file must provide.

        BatchNorm's `num_batches_tracked` counters are left out: they do not affect inference,
        and checkpoints ported from TensorFlow need not carry them.
        """
        return {k: tuple(v.shape) for k, v in self.state_dict().items()
                if not k.endswith("num_batches_tracked")}


INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
# torch.hub names files '<name>-<first hex digits of their sha256>.<ext>'.
INCEPTION_SHA256_PREFIX = "6726825d"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"{path}: no such Inception weights file (expected {INCEPTION_FILE})")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # weights_only: a .pth is a pickle, and a pickle from elsewhere could run code.
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to parse means the same to the user
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: cannot read Inception weights ({reason[:200]})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise DataError(f"{path}: not a state dict of tensors (expected {INCEPTION_FILE})")
    return state


def load_inception(path: str | Path) -> InceptionV3:
    """An `InceptionV3` in eval mode with the weights at `path` (.pth/.pt or .safetensors).

    Every expected key must be present with the expected shape and no others may be; the
    DataError names the file and the first offending keys.
    """
    path = Path(path).expanduser()
    state = _read_state_dict(path)
    model = InceptionV3()
    expected = model.expected_state()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and not k.endswith("num_batches_tracked")]
    misshaped = [f"{k} {tuple(state[k].shape)} instead of {expected[k]}"
                 for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    for label, keys in (("missing", missing), ("with the wrong shape", misshaped),
                        ("unexpected", unexpected)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise DataError(f"{path}: not pytorch-fid's Inception weights ({INCEPTION_FILE}): "
                            f"{len(keys)} keys {label}: {', '.join(keys[:3])}{more}")
    full = dict(model.state_dict())
    full.update({k: v.to(torch.float32) for k, v in state.items() if k in expected})
    model.load_state_dict(full)
    return model.eval()


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
        # Write then rename, so an interrupted run never leaves a half-written entry.
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, features=features)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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
