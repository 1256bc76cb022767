"""Pictures of samples: image grids and 2-D scatter plots as PNG, without a plotting library."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trilemma.io import write_atomic


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 (N, H, W, C) images tiled into one uint8 (rows*H, columns*W, C) picture."""
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c), 128, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top:top + h, left:left + w] = image
    return grid


def scatter_image(points: np.ndarray, size: int = 512, extent: float | None = None,
                  centres: np.ndarray | None = None) -> np.ndarray:
    """2-D points drawn as dots on a white square (centres, if given, as red crosses)."""
    canvas = np.full((size, size, 3), 255, np.uint8)
    pts = points[:, :2]
    extent = extent or float(np.abs(pts).max()) * 1.1 or 1.0

    def to_pixels(p):
        return np.clip(((p / extent + 1) / 2 * (size - 1)).round().astype(int), 0, size - 1)

    px = to_pixels(pts)
    canvas[size - 1 - px[:, 1], px[:, 0]] = (30, 60, 200)
    if centres is not None:
        for cx, cy in to_pixels(centres):
            for d in range(-4, 5):
                canvas[np.clip(size - 1 - cy + d, 0, size - 1), cx] = (220, 30, 30)
                canvas[size - 1 - cy, np.clip(cx + d, 0, size - 1)] = (220, 30, 30)
    return canvas


def save_png(picture: np.ndarray, path: str | Path, scale: int = 1) -> None:
    """A uint8 (H, W, C) picture as an image file, written atomically; each pixel becomes a
    `scale` x `scale` block. The format follows the suffix (PNG when it names none)."""
    from PIL import Image

    if picture.shape[-1] == 1:
        picture = picture[..., 0]
    image = Image.fromarray(picture)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    image_format = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    write_atomic(path, lambda f: image.save(f, format=image_format))


def save_sample_picture(x: np.ndarray, path: str | Path, data_name: str | None = None) -> None:
    """A grid for images (up to 64), a scatter plot for points."""
    if x.ndim == 4:
        save_png(image_grid(x[:64]), path, scale=3 if x.shape[1] <= 32 else 1)
        return
    from trilemma.data.mixtures import MIXTURES

    factory = MIXTURES.get(data_name or "")
    mixture = factory() if factory else None
    extent = float(np.abs(mixture.centres).max()) * 1.4 if mixture else None
    save_png(scatter_image(x, extent=extent, centres=mixture.centres if mixture else None), path)
