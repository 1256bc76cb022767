"""Laplacian variance against scipy.ndimage.laplace, and blur lowering it."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from trilemma.metrics import laplacian_variance, relative_sharpness
from trilemma.metrics.sharpness import sharpness_against_real


def _images(n: int = 6, size: int = 16, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def test_matches_scipy_laplace_on_the_interior() -> None:
    images = _images(channels=1)
    gray = images[..., 0] / 255.0
    # scipy's laplace is the same 3x3 stencil; its border values depend on padding, so only
    # the interior ('valid' region) is compared.
    expected = [ndimage.laplace(g)[1:-1, 1:-1].var() for g in gray]
    np.testing.assert_allclose(laplacian_variance(images), expected, rtol=1e-12)


def test_rgb_uses_luma_and_layouts_agree() -> None:
    images = _images()
    gray = (images / 255.0) @ np.array([0.299, 0.587, 0.114])
    expected = [ndimage.laplace(g)[1:-1, 1:-1].var() for g in gray]
    np.testing.assert_allclose(laplacian_variance(images), expected, rtol=1e-12)
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2)
    np.testing.assert_allclose(laplacian_variance(nchw), expected, rtol=1e-12)
    np.testing.assert_allclose(laplacian_variance(images / 255.0), expected, rtol=1e-12)


def test_blur_lowers_sharpness() -> None:
    images = _images().astype(np.float64) / 255.0
    blurred = ndimage.gaussian_filter(images, sigma=(0, 1.0, 1.0, 0))
    assert (laplacian_variance(blurred) < laplacian_variance(images)).all()
    assert relative_sharpness(images, blurred) < 0.5
    assert relative_sharpness(images, images) == pytest.approx(1.0)
    assert isinstance(relative_sharpness(images, blurred), float)


def test_rejects_unknown_layout() -> None:
    with pytest.raises(ValueError):
        laplacian_variance(np.zeros((2, 5, 8, 8)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        laplacian_variance(np.full((2, 8, 8), -0.5))


def test_sharpness_against_real_gives_both_means_and_their_ratio() -> None:
    """What `evaluate` records: scipy's Laplacian variances of each set, and their ratio."""
    real = _images(channels=1)
    fake = ndimage.uniform_filter(real, size=(1, 3, 3, 1))

    def scipy_mean(images: np.ndarray) -> float:
        return float(np.mean([ndimage.laplace(g / 255.0)[1:-1, 1:-1].var() for g in images[..., 0]]))

    found = sharpness_against_real(real, fake)
    assert found["real"] == pytest.approx(scipy_mean(real), rel=1e-12)
    assert found["generated"] == pytest.approx(scipy_mean(fake), rel=1e-12)
    assert found["relative"] == relative_sharpness(real, fake) < 1
    # Flat real images have no sharpness to compare with: no ratio, and the public one refuses.
    flat = np.full_like(real, 128)
    assert sharpness_against_real(flat, fake)["relative"] is None
    with pytest.raises(ValueError, match="zero Laplacian variance"):
        relative_sharpness(flat, fake)
