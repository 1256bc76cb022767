"""A small LeNet-style domain classifier, and how to train and score it on labelled images.

The classifier has two jobs. Its penultimate layer is the feature space of the domain metrics
(FD-lenet-mnist, KID, precision/recall, density/coverage), which is standard practice for
MNIST-scale data where Inception features mean little; its softmax gives class histograms
and the classifier score. Trained on generated samples only and tested on real held-out images
it gives the Classification Accuracy Score (Ravuri & Vinyals 2019).

Architecture after LeCun et al. 1998 (LeNet-5): two 5×5 convolution + ReLU + 2×2 max-pool
stages, a fully connected feature layer and a linear read-out. Image sides must be multiples
of 4 (two halvings). Inputs are float NCHW in [-1, 1]; `images_to_model` maps stored uint8.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ClassifierConfig",
    "DomainClassifier",
    "accuracy",
    "images_to_model",
    "load_classifier",
    "predict",
    "random_shift",
    "save_classifier",
    "train_classifier",
]


@dataclass
class ClassifierConfig:
    in_channels: int = 1
    image_size: int = 28  # square images; a multiple of 4
    num_classes: int = 10
    width: int = 16  # channels of the first stage; the second has twice as many
    feature_dim: int = 64  # the penultimate layer: the feature space of the domain metrics

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> ClassifierConfig:
        return cls(**{k: int(d[k]) for k in cls.__dataclass_fields__})


class DomainClassifier(nn.Module):
    """LeNet-like classifier; `forward` gives logits, `features` the penultimate activations."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        if config.image_size % 4 or config.image_size < 4:
            raise ValueError(
                f"image_size must be a positive multiple of 4, got {config.image_size}")
        self.config = config
        w, side = config.width, config.image_size // 4
        self.conv1 = nn.Conv2d(config.in_channels, w, 5, padding=2)
        self.conv2 = nn.Conv2d(w, 2 * w, 5, padding=2)
        self.fc = nn.Linear(2 * w * side * side, config.feature_dim)
        # Dropout regularises the read-out only; in eval mode (features, probabilities) it is off.
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, feature_dim) post-ReLU activations of the penultimate layer, for x in [-1, 1]."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def images_to_model(x: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [-1, 1], the data layer's model space."""
    return x.float() / 127.5 - 1.0


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own integer offset in [-max_shift, max_shift]² (both axes).

    Vacated pixels take the value -1 (black background in model space), as MNIST's border does.
    Offsets come from `generator` (a CPU generator), so training is reproducible on any device.
    """
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).to(x.device)
    rows = offsets[:, 0:1] + torch.arange(h, device=x.device)  # (n, h)
    cols = offsets[:, 1:2] + torch.arange(w, device=x.device)  # (n, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing puts the indexed dims first: (n, h, w, c); move channels back.
    crops = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()


def _as_nchw_uint8(x) -> torch.Tensor:
    tensor = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if tensor.dtype != torch.uint8 or tensor.ndim != 4:
        raise ValueError(
            f"expected uint8 images of shape (N, C, H, W); got {tensor.dtype} {tuple(tensor.shape)}"
        )
    return tensor


def train_classifier(
    x: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    num_classes: int,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    config: ClassifierConfig | None = None,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    max_shift: int | None = None,
) -> DomainClassifier:
    """Train a `DomainClassifier` on uint8 NCHW images `x` with int labels in [0, num_classes).

    Give `epochs` or `steps` (default: 30 epochs). Adam with a cosine-decayed learning rate
    and cross-entropy; each batch is shifted by up to `max_shift` pixels (default 2 for
    images 16 px or larger, 1 below: ±2 px is a quarter of an 8×8 digit). All randomness
    (initialisation, shuffling, shifts, dropout) is drawn from `seed` inside a forked RNG
    state, so the caller's global RNG is untouched and, on one CPU thread, the result is
    bit-for-bit reproducible. Returns the model in eval mode on `device`.

    Used for the shipped feature extractors (scripts/train_domain_classifiers.py) and, trained
    on generated samples, for the Classification Accuracy Score (Ravuri & Vinyals 2019).
    """
    x, y = _training_inputs(x, labels, num_classes)
    n, c, h, _ = x.shape
    config = config or ClassifierConfig(in_channels=c, image_size=h, num_classes=num_classes)
    if (config.in_channels, config.image_size, config.num_classes) != (c, h, num_classes):
        raise ValueError(f"config {config} does not fit images {tuple(x.shape[1:])} with "
                         f"{num_classes} classes")
    if epochs is not None and steps is not None:
        raise ValueError("give epochs or steps, not both")
    batch_size = min(batch_size, n)
    total_steps = steps if steps is not None else (30 if epochs is None else epochs) * math.ceil(n / batch_size)
    if total_steps < 1:
        raise ValueError(f"nothing to train: {total_steps} steps")
    shift = max_shift if max_shift is not None else (2 if h >= 16 else 1)
    device = torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = DomainClassifier(config).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        _fit(model, optimiser, images_to_model(x).to(device), y.to(device), total_steps, batch_size,
             shift, torch.Generator("cpu").manual_seed(seed))
    return model.eval()


def _training_inputs(x, labels, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NCHW square images and int64 labels in [0, num_classes), or ValueError."""
    x = _as_nchw_uint8(x)
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    y = y.long().cpu()
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},); got {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ValueError("no training images")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got {int(y.min())}..{int(y.max())}")
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"the classifier takes square images; got {x.shape[2]}x{x.shape[3]}")
    return x, y


def _fit(model: DomainClassifier, optimiser: torch.optim.Optimizer, x_model: torch.Tensor,
         y: torch.Tensor, total_steps: int, batch_size: int, shift: int,
         generator: torch.Generator) -> None:
    """`total_steps` of cross-entropy on shuffled, randomly shifted batches, with the learning
    rate cosine-decayed to zero."""
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / total_steps, 1.0))))
    model.train()
    step, n = 0, len(x_model)
    while step < total_steps:
        order = torch.randperm(n, generator=generator).to(x_model.device)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(model(random_shift(x_model[index], shift, generator)), y[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step == total_steps:
                return


@torch.inference_mode()
def predict(model: DomainClassifier, x: torch.Tensor | np.ndarray,
            batch_size: int = 500) -> torch.Tensor:
    """Predicted class indices (CPU int64) for uint8 NCHW images."""
    x = _as_nchw_uint8(x)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(images_to_model(x[i:i + batch_size].to(device))).argmax(1).cpu()
           for i in range(0, x.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(out)


def accuracy(model: DomainClassifier, x: torch.Tensor | np.ndarray,
             y: torch.Tensor | np.ndarray) -> float:
    """Fraction of uint8 NCHW images `x` whose predicted class equals the label in `y`."""
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).long().cpu()
    predicted = predict(model, x)
    if predicted.shape != y.shape:
        raise ValueError(f"{predicted.shape[0]} images but {y.shape[0]} labels")
    return float((predicted == y).double().mean())


def save_classifier(model: DomainClassifier, path: str | Path) -> None:
    """Weights as safetensors (contiguous CPU float32); the config goes in a JSON beside it."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path))


def load_classifier(path: str | Path, config: ClassifierConfig,
                    device: str | torch.device = "cpu") -> DomainClassifier:
    """A `DomainClassifier` in eval mode with the safetensors weights at `path`."""
    from safetensors.torch import load_file

    model = DomainClassifier(config)
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()
