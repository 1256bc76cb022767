"""A user's own data: a folder of images (optionally one sub-folder per class) or an
.npy/.npz array file. Files are only ever opened for reading.

This is the one reader of image files (PIL); array files are read by `trilemma.io`."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from trilemma.errors import DataError
from trilemma.io import as_images, read_array_file

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P_gray"}
MIN_SAMPLES = 8


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _image_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.is_file():
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(
                    f"{path}: not an image file (extension '{path.suffix or 'none'}'); "
                    f"expected one of {', '.join(sorted(IMAGE_EXTENSIONS))}"
                )
            files.append(path)
    return files


def _open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                image.load()
                return image.copy()
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: corrupt image ({error})") from None
    except Image.DecompressionBombError as error:
        raise DataError(f"{path}: image too large ({error})") from None


def _is_grayscale(image) -> bool:
    if image.mode == "P":
        palette = image.convert("RGB")
        array = np.asarray(palette)
        return bool((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all())
    return image.mode in GRAYSCALE_MODES


def _to_mode(image, mode: str):
    """Drop alpha by compositing onto white, then convert to L or RGB."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8))
    return image.convert(mode)


def _resize_crop(image, size: tuple[int, int]):
    """Scale so the image covers (W, H), then crop the centre: aspect ratio is kept."""
    from PIL import Image

    width, height = size
    scale = max(width / image.width, height / image.height)
    new = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    if new != image.size:
        image = image.resize(new, Image.Resampling.LANCZOS)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def load_image_folder(folder: Path, size: tuple[int, int] | None = None):
    """Returns (uint8 array NCHW, labels or None, class names, rules applied)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    class_dirs = [p for p in sorted(folder.iterdir()) if p.is_dir() and _visible(p)]
    top_files = [p for p in sorted(folder.iterdir()) if p.is_file() and _visible(p)]
    if class_dirs and top_files:
        raise DataError(
            f"{folder}: holds both files ({top_files[0].name}, …) and class folders "
            f"({class_dirs[0].name}, …); put every image in a class folder, or none"
        )
    if class_dirs:
        class_names = [d.name for d in class_dirs]
        entries = []
        for label, class_dir in enumerate(class_dirs):
            files = _image_files(class_dir)
            if not files:
                raise DataError(f"{class_dir}: class folder holds no images")
            entries += [(path, label) for path in files]
    else:
        class_names = []
        entries = [(path, -1) for path in _image_files(folder)]
    if not entries:
        raise DataError(f"{folder}: no images found")
    if len(entries) < MIN_SAMPLES:
        raise DataError(f"{folder}: only {len(entries)} images; at least {MIN_SAMPLES} are needed")

    images = [_open_image(path) for path, _ in entries]
    mode = "L" if all(_is_grayscale(im) for im in images) else "RGB"
    sizes = Counter(im.size for im in images)
    native = max(sizes.items(), key=lambda item: (item[1], item[0][0] * item[0][1]))[0]
    target = size or native
    # The networks halve the resolution twice, so sides are made multiples of 4.
    target = (max(8, target[0] // 4 * 4), max(8, target[1] // 4 * 4))
    converted = sum(1 for im in images if im.mode != mode)
    resized = sum(1 for im in images if im.size != target)
    arrays = []
    for image in images:
        image = _resize_crop(_to_mode(image, mode), target)
        array = np.asarray(image, dtype=np.uint8)
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    labels = np.array([label for _, label in entries]) if class_names else None
    rules = {
        "source": str(folder),
        "color_mode": mode,
        "image_size": [target[1], target[0]],
        "rules": (
            f"converted to {mode} (alpha composited onto white): {converted} images; "
            f"resized to {target[0]}x{target[1]} (scale to cover, centre crop, Lanczos): "
            f"{resized} images; most common native size {native[0]}x{native[1]}"
        ),
    }
    return np.stack(arrays), labels, class_names, rules


def load_array_file(path: Path):
    """Returns (uint8 NCHW images or float32 (N, D) points, labels or None, class names, rules).

    The file is read and its images converted by `trilemma.io`, as every command reads them;
    what is checked here is what a data set needs on top: enough samples, and image sides
    the networks can halve twice.
    """
    file = read_array_file(path)
    x = file.x
    if len(x) < MIN_SAMPLES:
        raise DataError(
            f"{path}: data array has shape {x.shape}; expected (N, D) points or (N, H, W[, C]) "
            f"images with N >= {MIN_SAMPLES}"
        )
    labels = file.y
    class_names = [] if labels is None else [str(c) for c in range(int(labels.max()) + 1)]
    if x.ndim == 2:
        rules = {"source": str(path), "rules": "points used as given (float32)"}
        return x.astype(np.float32), labels, class_names, rules
    images = as_images(x, str(path)).pixels
    height, width = images.shape[2:]
    if height < 8 or width < 8 or height % 4 or width % 4:
        raise DataError(
            f"{path}: images are {height}x{width}; height and width must be multiples of 4, at least 8"
        )
    rules = {
        "source": str(path),
        "color_mode": "L" if images.shape[1] == 1 else "RGB",
        "image_size": list(images.shape[2:]),
        "rules": f"array of dtype {x.dtype} and shape {tuple(x.shape)} read as {images.shape[1]}-channel images",
    }
    return images, labels, class_names, rules
