"""Sharpness as the variance of the Laplacian (Pech-Pacheco et al. 2000, "Diatom autofocusing
in brightfield microscopy"), the number behind "VAE samples are blurry": blur removes high
spatial frequencies, which is where the Laplacian responds.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R BT.601 luma, the weights PIL's convert("L") uses.
_LUMA = (0.299, 0.587, 0.114)
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
_IMAGES_PER_BLOCK = 1024


def _grayscale(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W) float64 in [0, 1] from uint8 in [0, 255] or float in [0, 1].

    Layouts: (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3; channels-last wins when
    both readings fit, as in trilemma's data loaders.
    """
    x = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.as_tensor(images)
    if x.dtype == torch.uint8:
        x = x.to(torch.float64) / 255.0
    else:
        x = x.to(torch.float64)
        # Model-space [-1, 1] or float [0, 255] would scale the variance by 4 or 65,025.
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"float images must lie in [0, 1] (found {float(x.min()):.3g} to "
                f"{float(x.max()):.3g}); pass uint8 in [0, 255] or rescale"
            )
    if x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.movedim(-1, 1)
    elif not (x.ndim == 3 or (x.ndim == 4 and x.shape[1] in (1, 3))):
        raise ValueError(
            f"images have shape {tuple(x.shape)}; expected (N, H, W), (N, H, W, C) or "
            "(N, C, H, W) with C = 1 or 3"
        )
    if x.ndim == 4:
        if x.shape[1] == 3:
            x = torch.einsum("nchw,c->nhw", x, torch.tensor(_LUMA, dtype=torch.float64))
        else:
            x = x[:, 0]
    if x.shape[-1] < 3 or x.shape[-2] < 3:
        raise ValueError(f"images of {x.shape[-2]}x{x.shape[-1]} are too small for a 3x3 kernel")
    return x


def laplacian_variance(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-image variance (population, ddof = 0) of the 3×3 Laplacian of the grayscale image.

    The kernel [[0, 1, 0], [1, −4, 1], [0, 1, 0]] is applied as a 'valid' convolution, so the
    border, where any padding rule would invent edges, does not count. Intensities are scaled
    to [0, 1] first (uint8 divided by 255; floats taken as already in [0, 1]), so the result
    does not depend on the storage type.
    """
    variances = []
    # Blocks keep the float64 copy small when tens of thousands of images come in at once.
    for start in range(0, len(images), _IMAGES_PER_BLOCK):
        gray = _grayscale(images[start : start + _IMAGES_PER_BLOCK])
        response = F.conv2d(gray[:, None], _LAPLACIAN[None, None])
        variances.append(response.flatten(1).var(dim=1, correction=0))
    if not variances:
        raise ValueError("no images given")
    return torch.cat(variances).numpy()


def sharpness_against_real(
    real_images: np.ndarray | torch.Tensor, fake_images: np.ndarray | torch.Tensor
) -> dict[str, float | None]:
    """Mean Laplacian variance of the real and of the generated images, and their ratio.

    ``{"real", "generated", "relative"}``; ``relative`` is None when the real images are all
    flat (zero variance), where the ratio has no meaning. `relative_sharpness` is this ratio.
    """
    real = float(laplacian_variance(real_images).mean())
    generated = float(laplacian_variance(fake_images).mean())
    return {"real": real, "generated": generated, "relative": generated / real if real else None}


def relative_sharpness(
    real_images: np.ndarray | torch.Tensor, fake_images: np.ndarray | torch.Tensor
) -> float:
    """Mean Laplacian variance of the fakes over that of the reals.

    1.0 means as sharp as the real images, below 1 blurrier, above 1 noisier or over-sharpened.
    """
    relative = sharpness_against_real(real_images, fake_images)["relative"]
    if relative is None:
        raise ValueError("the real images have zero Laplacian variance (all flat)")
    return relative
