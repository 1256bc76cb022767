"""Which features score a data set's images, with nothing downloaded.

`extractor_for_dataset(dataset, features)` follows `features`:

- ``auto`` (the default): the shipped domain classifier of a built-in set; otherwise, on a GPU,
  weights torch's hub cache already holds: DINOv2 ViT-B/14 or ViT-S/14 (the features dgm-eval
  recommends; on a user's own data there are no published FIDs to compare with, and DINOv2 ranks
  models closer to human judges, Stein et al. 2023), else the standard FID Inception file (where
  pytorch-fid and torchmetrics leave it, checked by hash); otherwise a network trained on the
  data's own training split (`trilemma.metrics.features.trained`, cached by content hash); random
  features only when the split is too small to learn from. On a CPU the hub files are found but not
  used unless asked for: on a 2-core CPU they embed 9 to 12 images a second (bench_feature_speed.py),
  so scoring a folder's training split would take longer than training the families.
- ``dinov2`` or ``inception``: that hub-cache file, on any device; an error when it is not there.
- ``trained`` or ``random``: those features.
- a path: a weights file, DINOv2 (hub layout) or pytorch-fid's Inception, told apart by their keys.
  An Inception file of another hash than the standard one's is used with a warning; DINOv2 has no
  published hash to check, so its sha256 is recorded in the provenance and a warning says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trilemma.data import Dataset
from trilemma.errors import DataError
from trilemma.evaluation.inputs import builtin_name
from trilemma.metrics.features import (
    FeatureExtractor,
    InceptionV3Extractor,
    RandomConvExtractor,
    extractor_for,
)
from trilemma.metrics.features.base import file_sha256
from trilemma.metrics.features.dinov2 import HUB_FILES, DinoV2Extractor
from trilemma.nets.inception import INCEPTION_FILE, INCEPTION_SHA256_PREFIX, read_state_dict

CHOICES = ("auto", "trained", "random", "inception", "dinov2")
DINOV2_KEYS = ("patch_embed.proj.weight", "cls_token")


def hub_checkpoints() -> Path:
    """Where torch.hub keeps downloaded weights ($TORCH_HOME/hub/checkpoints by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def standard_inception() -> Path | None:
    """The FID Inception file in the hub cache, when its sha256 is the published one."""
    path = hub_checkpoints() / INCEPTION_FILE
    if path.is_file() and file_sha256(path).startswith(INCEPTION_SHA256_PREFIX):
        return path
    return None


def hub_dinov2() -> Path | None:
    """A DINOv2 checkpoint in the hub cache (ViT-B/14 before ViT-S/14), or None."""
    return next((p for name in HUB_FILES if (p := hub_checkpoints() / name).is_file()), None)


def extractor_for_dataset(dataset: Dataset, features: str | Path | None = "auto",
                          device: str | torch.device = "cpu",
                          log: Callable[[str], Any] = print) -> FeatureExtractor:
    """The extractor of the module docstring for `dataset` (images only)."""
    from trilemma.metrics.features.base import _device

    choice = str(features or "auto")
    name = builtin_name(dataset) or ""
    if choice == "random":
        return RandomConvExtractor(seed=0, device=device)
    if choice == "inception":
        path = standard_inception()
        if path is None:
            raise DataError(f"--features inception: no {INCEPTION_FILE} with sha256 {INCEPTION_SHA256_PREFIX}… in "
                            f"{hub_checkpoints()}; name the file with --features PATH")
        return InceptionV3Extractor(path, device=device)
    if choice == "dinov2":
        path = hub_dinov2()
        if path is None:
            raise DataError(f"--features dinov2: no {' or '.join(HUB_FILES)} in {hub_checkpoints()}; "
                            "name the file with --features PATH")
        return _dinov2(path, device, log)
    if choice not in CHOICES:
        return extractor_from_file(Path(choice), device, log)
    if choice == "auto" and name:
        return extractor_for(name, dataset.sample_shape, device=device)
    if choice == "auto" and _device(device).type == "cuda":
        if (path := hub_dinov2()) is not None:
            return _dinov2(path, device, log)
        if (path := standard_inception()) is not None:
            log(f"features: the standard Inception file found in {path.parent}")
            return InceptionV3Extractor(path, device=device)
    from trilemma.metrics.features.trained import MIN_TRAIN_IMAGES, trained_extractor

    if len(dataset.x_train) < MIN_TRAIN_IMAGES:
        log(f"features: {len(dataset.x_train)} training images are too few to learn features from "
            f"(at least {MIN_TRAIN_IMAGES}); random features are used, and the report says so")
        return RandomConvExtractor(seed=0, device=device)
    return trained_extractor(dataset.x_train, dataset.y_train, dataset.num_classes, dataset.x_heldout,
                             dataset.y_heldout, device=device, log=log)


def features_file(text: str | Path) -> Path:
    """The weights file a --features value names, or the one-line error saying there is none."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise DataError(f"--features {text}: no such file (give a weights file, or one of {', '.join(CHOICES)})")
    return path


def extractor_from_file(path: Path, device: str | torch.device, log: Callable[[str], Any]) -> FeatureExtractor:
    """The extractor a named weights file holds, or the one-line error saying why not."""
    path = features_file(path)
    if _looks_like_dinov2(path):
        return _dinov2(path, device, log)
    extractor = InceptionV3Extractor(path, device=device)
    if not extractor.is_reference_weights:
        log(f"warning: --features {path}: sha256 {extractor.weights_sha256[:12]}… is not the standard "
            f"{INCEPTION_FILE}'s ({INCEPTION_SHA256_PREFIX}…); its FIDs compare only with others on this file")
    return extractor


def _dinov2(path: Path, device: str | torch.device, log: Callable[[str], Any]) -> DinoV2Extractor:
    extractor = DinoV2Extractor(path, device=device)
    log(f"features: {extractor.name} from {path}; DINOv2 has no published hash to check it against, so its "
        f"sha256 ({extractor.weights_sha256[:12]}…) is recorded with every figure")
    return extractor


def _looks_like_dinov2(path: Path) -> bool:
    keys = read_state_dict(path).keys()  # a file that cannot be read ends here, named
    return all(any(k.endswith(key) for k in keys) for key in DINOV2_KEYS)
