"""Colour image folders for the tests of the features used on a user's own data: four kinds of
shape (disc, square, ring, cross) in random colours, sizes and places, on a gradient background."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHAPES = ("disc", "square", "ring", "cross")


def shape_images(n: int, seed: int = 0, side: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (n, side, side, 3) images, int64 shape labels), classes in equal shares."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(SHAPES)
    rng.shuffle(labels)
    grid = np.arange(side, dtype=np.float64)
    rows, cols = grid[None, :, None], grid[None, None, :]
    centre = rng.uniform(0.35 * side, 0.65 * side, (n, 2))
    radius = rng.uniform(0.18 * side, 0.32 * side, n)[:, None, None]
    dr, dc = rows - centre[:, :1, None], cols - centre[:, 1:, None]
    distance = np.sqrt(dr ** 2 + dc ** 2)
    masks = {
        0: distance <= radius,
        1: (np.abs(dr) <= 0.8 * radius) & (np.abs(dc) <= 0.8 * radius),
        2: (distance <= radius) & (distance >= 0.55 * radius),
        3: ((np.abs(dr) <= 0.3 * radius) | (np.abs(dc) <= 0.3 * radius)) & (np.maximum(np.abs(dr), np.abs(dc)) <= radius),
    }
    inside = np.select([labels[:, None, None] == k for k in masks], [masks[k] for k in masks], False)
    top, bottom = rng.uniform(0, 255, (n, 3)), rng.uniform(0, 255, (n, 3))
    blend = (grid / (side - 1))[None, :, None, None]
    background = top[:, None, None, :] * (1 - blend) + bottom[:, None, None, :] * blend
    colour = rng.uniform(0, 255, (n, 3))
    images = np.where(inside[..., None], colour[:, None, None, :], background)
    images += rng.normal(0, 3.0, images.shape)
    return np.clip(np.round(images), 0, 255).astype(np.uint8), labels.astype(np.int64)


def write_folder(path: Path, n: int, seed: int = 0, labelled: bool = True, side: int = 32) -> Path:
    """A folder of n PNGs, in one sub-folder per shape when `labelled`."""
    from PIL import Image

    images, labels = shape_images(n, seed, side)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = path / SHAPES[label] if labelled else path
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    return path
