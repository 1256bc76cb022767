"""DINOv2 features from a checkpoint already on the machine, preprocessed as dgm-eval does:
images in [0, 1] (grey repeated to RGB), resized to 224×224 (bicubic, antialiased), normalised
with ImageNet's mean and standard deviation; the feature is the normalised class token."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from trilemma.metrics.features.base import FeatureExtractor, file_sha256
from trilemma.nets.dinov2 import load_dinov2
from trilemma.nets.inception import read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIDE = 224
HUB_FILES = ("dinov2_vitb14_pretrain.pth", "dinov2_vits14_pretrain.pth")  # as torch.hub names them


class DinoV2Extractor(FeatureExtractor):
    """The class token of a DINOv2 ViT-S/14 or ViT-B/14 checkpoint (see the module docstring)."""

    def __init__(self, weights_path: str | Path, device: str | torch.device = "cpu", batch_size: int = 50):
        super().__init__(device, batch_size)
        self.weights_path = Path(weights_path).expanduser()
        model, self.name = load_dinov2(self.weights_path, read_state_dict(self.weights_path))
        self.model = model.to(self.device)
        self.dim = int(model.norm.normalized_shape[0])
        self.weights_sha256 = file_sha256(self.weights_path)
        self.limits = (f"DINOv2 features ({self.name}, sha256 {self.weights_sha256[:12]}…), preprocessed as dgm-eval "
                       "does: values compare with FD_DINOv2 figures computed on the same checkpoint, n and "
                       "reference set, not with Inception FIDs.")
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(SIDE, SIDE), mode="bicubic", align_corners=False, antialias=True)
        return self.model((x - self._mean) / self._std)
