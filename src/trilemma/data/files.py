"""A user's own data: a folder of images (optionally one sub-folder per class) or an
.npy/.npz array file. Files are only ever opened for reading.

This is the one reader of image files (PIL); array files are read by `trilemma.io`. A folder
may have been built to hurt, so: symbolic links are followed but a loop is refused, as are
broken links, pipes and devices; Pillow parses only the formats the extensions name; every
image's header is checked against the pixel limit (`MAX_IMAGE_PIXELS`) and the folder's total
against the memory limit before its pixels are decoded; and when some files cannot be read,
they are named before anything else is said about the folder."""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
import struct
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from trilemma.errors import DataError, printable
from trilemma.io import as_images, read_array_file
from trilemma.io.npy import MEMORY_FRACTION, memory_limit

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P_gray"}
MIN_SAMPLES = 8
MAX_DEPTH = 32  # sub-folders within sub-folders: deeper is refused (and would exhaust recursion)


# What Pillow may parse: the formats of IMAGE_EXTENSIONS and no other, whatever a file's bytes
# claim to be (EPS, for one, would start Ghostscript). Camera JPEGs (MPO) open as JPEG.
PIL_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM")
# The pixel limit: an image whose header declares more pixels than this is refused before a
# byte of it is decoded. Pillow's own decompression-bomb check (a warning above 89.5 Mpx) is
# made an error as well, for whoever lowers Pillow's limit below this one.
MAX_IMAGE_PIXELS = 8192 * 8192  # 67,108,864
# What Pillow raises on bytes it cannot make sense of; caught only around its calls.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, IndexError,
                 KeyError, TypeError, ZeroDivisionError, OverflowError, RuntimeError,
                 NotImplementedError, MemoryError)


def _stat(path: Path) -> os.stat_result:
    """The stat of what `path` leads to, or one line saying why there is nothing there."""
    try:
        return path.stat()
    except OSError as error:
        if path.is_symlink():
            if error.errno == errno.ELOOP:
                raise DataError(f"{printable(path)}: symbolic link loop") from None
            raise DataError(f"{printable(path)}: broken symbolic link (to "
                            f"{printable(os.readlink(path))}, which does not exist)") from None
        raise DataError(f"{printable(path)}: cannot read ({error.strerror or error})") from None


def _listing(folder: Path) -> list[tuple[Path, os.stat_result]]:
    """The visible entries of a folder, sorted by name, with what each leads to."""
    try:
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries if not entry.name.startswith("."))
    except OSError as error:
        raise DataError(f"{printable(folder)}: cannot list the folder "
                        f"({error.strerror or error})") from None
    return [(folder / name, _stat(folder / name)) for name in names]


def _image_files(folder: Path, chain: tuple[tuple[int, int], ...]) -> list[Path]:
    """The image files under `folder`, in the order of their sorted paths. Symbolic links are
    followed; one that leads back to a folder on the way here (`chain`) is a loop, refused."""
    files = []
    for path, info in _listing(folder):
        if stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) in chain:
                raise DataError(f"{printable(path)}: symbolic link loop (leads back to a folder "
                                "that contains it)")
            if len(chain) > MAX_DEPTH:
                raise DataError(f"{printable(path)}: folders nested more than {MAX_DEPTH} deep")
            files += _image_files(path, (*chain, (info.st_dev, info.st_ino)))
        elif not stat.S_ISREG(info.st_mode):
            raise DataError(f"{printable(path)}: not a regular file (a pipe, socket or device)")
        elif path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(
                f"{printable(path)}: not an image file (extension '{printable(path.suffix) or 'none'}'); "
                f"expected one of {', '.join(sorted(IMAGE_EXTENSIONS))}"
            )
        else:
            files.append(path)
    return files


class _FolderTooLarge(DataError):
    """The folder's images together declare more pixels than memory holds."""


class _Decoded:
    """The pixels the folder's images declare so far, held to `memory_limit()`."""

    def __init__(self, folder: Path):
        self.folder, self.total, self.limit = folder, 0, memory_limit()

    def add(self, path: Path, image) -> None:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise DataError(f"{printable(path)}: image declares {width * height:,} pixels "
                            f"({width}x{height}), above the limit of {MAX_IMAGE_PIXELS:,} pixels "
                            "per image; refused before decoding")
        self.total += width * height * len(image.getbands())
        if self.total > self.limit:
            raise _FolderTooLarge(f"{printable(self.folder)}: its images declare more than "
                                  f"{self.limit / (1 << 30):.3g} GiB of pixels, {MEMORY_FRACTION:.0%} of "
                                  f"this machine's memory; refused before decoding them all")


@functools.cache
def _pil_formats() -> tuple[str, ...]:
    from PIL import Image

    Image.init()
    return tuple(name for name in PIL_FORMATS if name in Image.OPEN)


def _open_image(path: Path, decoded: _Decoded):
    """The decoded image at `path`: its header is read and checked against the pixel limit
    before any pixel is decoded."""
    shown = printable(path)
    if path.stat().st_size == 0:
        raise DataError(f"{shown}: empty file (0 bytes)")
    try:
        with open(path, "rb") as file:
            return _decode(file, path, decoded)
    except OSError as error:  # opening; Pillow's own errors are DataErrors by now
        raise DataError(f"{shown}: cannot open ({error.strerror or error})") from None


def _decode(file, path: Path, decoded: _Decoded):
    from PIL import Image, UnidentifiedImageError

    shown = printable(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(file, formats=_pil_formats())
        except UnidentifiedImageError:
            raise DataError(f"{shown}: not a readable image (unknown or corrupt format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            # Pillow's own check, at a limit above ours, came first: the header declares more
            # than either allows. Its message holds the number of pixels.
            pixels = re.search(r"\((\d+) pixels\)", str(error))
            declared = f"{int(pixels[1]):,} pixels" if pixels else "too many pixels"
            raise DataError(f"{shown}: image declares {declared}, above the limit of "
                            f"{MAX_IMAGE_PIXELS:,} pixels per image; refused before decoding") from None
        except DECODE_ERRORS as error:
            raise DataError(f"{shown}: corrupt image ({type(error).__name__}: {error})") from None
        with image:
            decoded.add(path, image)
            try:
                image.load()
                return image.copy()
            except DECODE_ERRORS as error:
                raise DataError(f"{shown}: corrupt image ({type(error).__name__}: {error})") from None


def _open_all(folder: Path, paths: list[Path]) -> list:
    """Every image decoded; else one line naming the unreadable files, the first in full, and,
    when the folder is too small anyway, saying so after them."""
    decoded, images, failures = _Decoded(folder), [], []
    for path in paths:
        try:
            images.append(_open_image(path, decoded))
        except _FolderTooLarge:
            raise
        except DataError as error:
            failures.append((path, error))
    if failures:
        message = str(failures[0][1])
        if len(failures) > 1:
            others = [printable(path.name) for path, _ in failures[1:4]]
            message += (f"; {len(failures) - 1} more unreadable image(s): {', '.join(others)}"
                        f"{', …' if len(failures) > 4 else ''}")
        if len(paths) < MIN_SAMPLES:
            message += f"; besides, {printable(folder)} holds only {len(paths)} images and at least {MIN_SAMPLES} are needed"
        raise DataError(message)
    return images


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


def _entries(folder: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(image path, label or -1) in sorted order, and the class names (one per sub-folder)."""
    listing = _listing(folder)
    top = ((folder.stat().st_dev, folder.stat().st_ino),)
    class_dirs = [path for path, info in listing if stat.S_ISDIR(info.st_mode)]
    top_files = [path for path, info in listing if not stat.S_ISDIR(info.st_mode)]
    if class_dirs and top_files:
        raise DataError(
            f"{printable(folder)}: holds both files ({printable(top_files[0].name)}, …) and class "
            f"folders ({printable(class_dirs[0].name)}, …); put every image in a class folder, or none"
        )
    if not class_dirs:
        return [(path, -1) for path in _image_files(folder, top)], []
    entries = []
    for label, class_dir in enumerate(class_dirs):
        info = class_dir.stat()
        if (info.st_dev, info.st_ino) in top:
            raise DataError(f"{printable(class_dir)}: symbolic link loop (leads back to "
                            f"{printable(folder)})")
        files = _image_files(class_dir, (*top, (info.st_dev, info.st_ino)))
        if not files:
            raise DataError(f"{printable(class_dir)}: class folder holds no images")
        entries += [(path, label) for path in files]
    return entries, [printable(d.name) for d in class_dirs]


def _converted(image, path: Path, mode: str, target: tuple[int, int]) -> np.ndarray:
    try:
        array = np.asarray(_resize_crop(_to_mode(image, mode), target), dtype=np.uint8)
    except DECODE_ERRORS as error:  # an exotic mode Pillow cannot convert
        raise DataError(f"{printable(path)}: cannot convert its {image.mode} image to {mode} "
                        f"({type(error).__name__}: {error})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def folder_entries(folder: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(image path, label or -1) for every image of the folder, sorted, and the class names."""
    if not folder.is_dir():
        raise DataError(f"{printable(folder)}: not a folder")
    return _entries(folder)


def check_folder_entries(folder: Path, entries: list[tuple[Path, int]]) -> None:
    if not entries:
        raise DataError(f"{printable(folder)}: no images found")
    if len(entries) < MIN_SAMPLES:
        raise DataError(f"{printable(folder)}: only {len(entries)} images; at least {MIN_SAMPLES} are needed")


def load_image_folder(folder: Path, size: tuple[int, int] | None = None,
                      listed: tuple[list[tuple[Path, int]], list[str]] | None = None):
    """Returns (uint8 array NCHW, labels or None, class names, rules applied). `listed`: the
    folder's `folder_entries`, when the caller has them."""
    entries, class_names = listed or folder_entries(folder)
    if not entries:
        raise DataError(f"{printable(folder)}: no images found")
    images = _open_all(folder, [path for path, _ in entries])  # unreadable files are named first
    check_folder_entries(folder, entries)

    mode = "L" if all(_is_grayscale(im) for im in images) else "RGB"
    sizes = Counter(im.size for im in images)
    native = max(sizes.items(), key=lambda item: (item[1], item[0][0] * item[0][1]))[0]
    target = size or native
    # The networks halve the resolution twice, so sides are made multiples of 4.
    target = (max(8, target[0] // 4 * 4), max(8, target[1] // 4 * 4))
    converted = sum(1 for im in images if im.mode != mode)
    resized = sum(1 for im in images if im.size != target)
    arrays = [_converted(image, path, mode, target) for image, (path, _) in zip(images, entries, strict=True)]
    labels = np.array([label for _, label in entries]) if class_names else None
    rules = {
        "source": printable(folder),
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
