"""A feature network trained on the user's own images, for data with no shipped classifier and
no standard weights on the machine.

Nothing can be downloaded, and untrained random features have nothing behind them (the sanity
ladders show them blind to blur and to missing classes), so the features of a user's folder are
learnt from its training split. Three losses, summed:

- contrastive (NT-Xent, Chen et al. 2020): two views of each image, made by random translations
  and a cut-out square, must find each other among the batch;
- with class labels (class sub-folders), cross-entropy on the classes as well;
- clean or degraded: a head tells each view from a copy blurred (σ 0.3 to 2.5 px) or noised (2 to
  40 grey levels), the two faults the folklore gives generated images.

The network: three 3×3 convolution + batch-norm + ReLU + 2×2 max-pool stages (16, 32, 64 channels)
and a 128-unit ReLU embedding of the last stage's mean and max. Its features are three blocks: each
stage's mean activations (what an image is made of: edges, texture, noise), the embedding (what it
shows) and the clean-or-degraded logit, each divided by its total standard deviation on training
images so that none swamps the others. Images are mapped to [-1, 1] and resized (bilinear,
antialiased) to at most 64 pixels a side. The ladders (`trilemma.evaluation.ladders`) then check,
on held-out images, what these features can see; they are not trained on the ladders' exact rungs.

Training takes a fixed number of steps (deterministic for a seed and thread count), and the result
is cached under ``$TRILEMMA_CACHE/features/`` as safetensors plus a JSON record (recipe, data hash,
held-out score, seconds), keyed by the sha256 of the training images and labels and of the recipe:
a later run on the same data reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trilemma.cache import cache_dir
from trilemma.metrics.features.base import FeatureExtractor, _device, file_sha256
from trilemma.metrics.features.degrade import degrade

RECIPE_VERSION = 1
MIN_TRAIN_IMAGES = 200  # fewer, and there is nothing to learn features from: random ones are used


@dataclass(frozen=True)
class FeatureRecipe:
    """How the network is trained; part of its cache key."""

    in_channels: int
    side: int  # images are resized to side × side
    num_classes: int  # 0: contrastive
    widths: tuple[int, ...] = (16, 32, 64)
    feature_dim: int = 128
    steps: int = 800
    batch_size: int = 128
    learning_rate: float = 2e-3
    temperature: float = 0.2
    seed: int = 0

    def to_json(self) -> dict:
        return {**asdict(self), "widths": list(self.widths), "version": RECIPE_VERSION}

    @classmethod
    def from_json(cls, d: dict) -> FeatureRecipe:
        fields = {k: d[k] for k in cls.__dataclass_fields__}
        return cls(**{**fields, "widths": tuple(int(w) for w in fields["widths"])})

    @property
    def objective(self) -> str:
        return "classifier" if self.num_classes else "contrastive"


class FeatureNet(nn.Module):
    """The small convolutional network of the module docstring; `features` gives its embedding,
    `forward` the logits (classifier) or the normalised projection (contrastive)."""

    def __init__(self, recipe: FeatureRecipe):
        super().__init__()
        self.recipe = recipe
        channels = (recipe.in_channels, *recipe.widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in pairwise(channels))
        self.norms = nn.ModuleList(nn.BatchNorm2d(b) for b in channels[1:])
        self.embed = nn.Linear(2 * channels[-1], recipe.feature_dim)
        levels = sum(recipe.widths)
        # Each block's typical size on the training images, so that neither block swamps the other.
        self.register_buffer("scales", torch.ones(3))
        self.dim = levels + recipe.feature_dim + 1
        d = recipe.feature_dim
        self.projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 64))  # contrastive
        self.classes = nn.Linear(d, recipe.num_classes) if recipe.num_classes else None
        self.degraded = nn.Linear(recipe.feature_dim, 1)  # clean (0) or blurred / noised (1)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW images to the network's float input."""
        x = images.float() / 127.5 - 1.0
        side = self.recipe.side
        if tuple(x.shape[2:]) != (side, side):
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        return x

    def _levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = []
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x)))
            pooled.append(x.mean(dim=(2, 3)))
            x = F.max_pool2d(x, 2)
        top = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return torch.cat(pooled, dim=1), F.relu(self.embed(top))

    def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's mean activations (what the image is made of: edges, texture, noise), the
        embedding (what it shows) and the logit of "degraded" (how clean it looks)."""
        levels, embedding = self._levels(x)
        return [levels, embedding, self.degraded(embedding)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The three `blocks`, each divided by its total standard deviation on training images."""
        return torch.cat([b / s for b, s in zip(self.blocks(x), self.scales)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The embedding and the logit of "degraded"."""
        embedding = self._levels(x)[1]
        return embedding, self.degraded(embedding).squeeze(1)

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """The normalised projection the contrastive loss compares."""
        return F.normalize(self.projection(embedding), dim=1)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classes(embedding)


class TrainedFeatureExtractor(FeatureExtractor):
    """Features of a `FeatureNet` trained on the data it scores (see the module docstring)."""

    def __init__(self, weights_path: Path, record: dict, device: str | torch.device = "cpu",
                 batch_size: int = 500):
        super().__init__(device, batch_size)
        from safetensors.torch import load_file

        self.record = record
        self.recipe = FeatureRecipe.from_json(record["recipe"])
        self.model = FeatureNet(self.recipe)
        self.model.load_state_dict(load_file(str(weights_path)))
        self.model.to(self.device).eval()
        self.weights_sha256 = file_sha256(weights_path)
        self.name = f"trained-{self.recipe.objective}-{record['data_sha256'][:8]}"
        self.dim = self.model.dim
        self.limits = (
            f"Features of a {self.recipe.objective} network trained on this data's training split "
            f"({self.recipe.steps} steps): values compare between models scored with this same "
            "extractor (name and hash) on this data, not with FIDs or with other data. The sanity "
            "ladders show what these features can see.")

    def check_images(self, x: torch.Tensor) -> None:
        from trilemma.errors import DataError

        if x.shape[1] != self.recipe.in_channels:
            raise DataError(f"{self.name} takes images with {self.recipe.in_channels} channel(s); "
                            f"got {x.shape[1]}")

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.features(self.model.prepare(batch))


def data_sha256(x: torch.Tensor, y: torch.Tensor | None) -> str:
    """sha256 of the training images (shape and bytes, a block at a time) and labels."""
    digest = hashlib.sha256(repr(tuple(x.shape)).encode())
    for start in range(0, len(x), 4096):
        digest.update(x[start:start + 4096].contiguous().numpy().tobytes())
    if y is not None:
        digest.update(y.to(torch.int64).numpy().tobytes())
    return digest.hexdigest()


def recipe_for(x: torch.Tensor, num_classes: int) -> FeatureRecipe:
    """The default recipe for training images `x` (N, C, H, W): side up to 64, a batch of as many
    pixels at any side, and the recipe's 800 steps whatever the folder's size (the clean-or-degraded head needs them: at 375 steps,
    precision missed σ = 1 blur on the test folders; at 750 it fell by a third)."""
    side = min(64, max(x.shape[2], x.shape[3]))
    side = max(8, side - side % 8)
    # As many pixels a step at any side: 128 images of 32 x 32, 32 of 64 x 64.
    batch = max(32, min(128, round(128 * (32 / side) ** 2)))
    return FeatureRecipe(in_channels=int(x.shape[1]), side=side, num_classes=num_classes, batch_size=batch)


def trained_extractor(x_train: torch.Tensor, y_train: torch.Tensor | None, num_classes: int,
                      x_heldout: torch.Tensor, y_heldout: torch.Tensor | None,
                      device: str | torch.device = "cpu", log=print) -> TrainedFeatureExtractor:
    """The extractor for this training split, trained now or read from the cache."""
    from trilemma import distributed
    from trilemma.io import write_atomic, write_json

    device = _device(device)
    labelled = y_train is not None and num_classes > 1
    recipe = recipe_for(x_train, num_classes if labelled else 0)
    data_hash = data_sha256(x_train, y_train if labelled else None)
    key = hashlib.sha256(json.dumps(recipe.to_json(), sort_keys=True).encode() + data_hash.encode())
    stem = cache_dir() / "features" / f"trained-{key.hexdigest()[:24]}"
    weights, record_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if distributed.is_main() and not _readable(weights, record_path):
        log(f"features: training a {recipe.objective} feature network on {len(x_train)} images "
            f"({recipe.steps} steps; cached in {stem.parent})")
        start = time.perf_counter()
        model = train_feature_net(x_train, y_train if labelled else None, recipe, device)
        record = {"recipe": recipe.to_json(), "data_sha256": data_hash,
                  "train_seconds": round(time.perf_counter() - start, 2), "n_train": len(x_train),
                  "heldout": heldout_score(model, x_heldout, y_heldout if labelled else None)}
        stem.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(weights, lambda f: f.write(_safetensors_bytes(model)))
        write_json(record_path, record)
    distributed.barrier()
    return TrainedFeatureExtractor(weights, json.loads(record_path.read_text()), device=device)


def _safetensors_bytes(model: FeatureNet) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()})


def _readable(weights: Path, record: Path) -> bool:
    try:
        return weights.is_file() and "recipe" in json.loads(record.read_text())
    except (OSError, ValueError):
        return False


def _views(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random translation (up to 1/8 of the side, edges repeated) and a cut-out square of a
    quarter of the side, per image."""
    n, _, side, _ = x.shape
    shift = max(1, side // 8)
    padded = F.pad(x, (shift,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=generator).to(x.device)
    grid = torch.arange(side, device=x.device)
    rows, cols = offsets[:, :1] + grid, offsets[:, 1:] + grid
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    hole = max(1, side // 4)
    corner = torch.randint(0, side - hole + 1, (n, 2), generator=generator).to(x.device)
    inside_r = (grid >= corner[:, :1]) & (grid < corner[:, :1] + hole)
    inside_c = (grid >= corner[:, 1:]) & (grid < corner[:, 1:] + hole)
    mask = (inside_r[:, :, None] & inside_c[:, None, :])[:, None]
    return out.masked_fill(mask, 0.0).contiguous()


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """The NT-Xent loss of 2B normalised projections, rows i and i + B being the two views."""
    b = len(z) // 2
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(similarity, target)


def train_feature_net(x: torch.Tensor, y: torch.Tensor | None, recipe: FeatureRecipe,
                      device: str | torch.device = "cpu") -> FeatureNet:
    """`recipe.steps` steps of Adam on random batches of uint8 images `x` (and labels `y`), on
    `device`: the objectives of the module docstring. Random draws come from a CPU generator."""
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    model = FeatureNet(recipe).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, recipe.steps)
    model.train()
    for _ in range(recipe.steps):
        index = torch.randint(0, len(x), (min(recipe.batch_size, len(x)),), generator=generator).sort().values
        batch = model.prepare(x[index].to(device))
        views = [_views(batch, generator), _views(batch, generator)]
        out, degraded = model(torch.cat([*views, degrade(views[0], generator)]))
        b = len(batch)
        loss = nt_xent(model.project(out[:2 * b]), recipe.temperature)
        if y is not None:
            loss = loss + F.cross_entropy(model.classify(out[:b]), y[index].to(device))
        target = torch.cat([torch.zeros(b), torch.ones(b)]).to(device)
        pairs = torch.cat([degraded[:b], degraded[-b:]])
        loss = loss + F.binary_cross_entropy_with_logits(pairs, target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    model.eval()
    with torch.no_grad():  # each block's total standard deviation on (up to 2,000) training images
        index = torch.randperm(len(x), generator=generator)[:2000].sort().values
        blocks = model.blocks(model.prepare(x[index].to(device)))
        model.scales.copy_(torch.stack([b.var(dim=0).sum().sqrt().clamp_min(1e-8) for b in blocks]))
    return model


@torch.inference_mode()
def heldout_score(model: FeatureNet, x: torch.Tensor, y: torch.Tensor | None) -> dict:
    """What the network learnt, on held-out images: classification accuracy, or for the
    contrastive network how often an image's nearest neighbour among the other view of every
    held-out image is its own other view (top-1 retrieval)."""
    generator = torch.Generator().manual_seed(1)
    index = torch.randperm(len(x), generator=generator)[:2000].sort().values  # a split may be in class order
    x, y = x[index], (None if y is None else y[index])
    device = model.scales.device
    inputs = model.prepare(x.to(device))
    if y is not None:
        predicted = torch.cat([model.classify(model(inputs[i:i + 500])[0]).argmax(1)
                               for i in range(0, len(x), 500)])
        return {"accuracy": float((predicted.cpu() == y).float().mean())}
    a, b = (model.project(model(_views(inputs, generator))[0]) for _ in range(2))
    found = (a @ b.T).argmax(dim=1).cpu()
    return {"retrieval_top1": float((found == torch.arange(len(x))).float().mean()),
            "chance": 1.0 / max(1, len(x))}


__all__ = [
    "MIN_TRAIN_IMAGES",
    "FeatureNet",
    "FeatureRecipe",
    "TrainedFeatureExtractor",
    "data_sha256",
    "heldout_score",
    "nt_xent",
    "train_feature_net",
    "trained_extractor",
]
