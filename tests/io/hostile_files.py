"""Makers of hostile files, and the checks every hostile case shares: one line, exit code 2,
nothing written, every input unchanged."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image

from trilemma.errors import printable


def png_bytes(mode: str = "L", size: int = 12, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, len(mode))
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(size: int = 16, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, colour_type: int = 0) -> bytes:
    """A well-formed PNG (valid CRCs) whose header declares width x height pixels and whose
    body holds a few hundred bytes: what a decompression bomb's header looks like."""
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"\0" * 512)) + _chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG whose start-of-frame marker is rewritten to declare width x height."""
    data = bytearray(jpeg_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def npy_declaring(shape: tuple[int, ...], descr: str, data: bytes, fortran: bool = False) -> bytes:
    """An .npy file whose header says what it likes, followed by `data`."""
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buffer.getvalue() + data


def npz_of(members: dict[str, bytes], compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def npz_bytes(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def snapshot(folder: Path) -> dict[bytes, tuple[str, int]]:
    """Every entry under `folder` (bytes paths, so that any name will do, links not followed):
    a file's sha256 and mtime, a link's target, a folder's presence."""
    seen = {}
    for root, dirs, files in os.walk(os.fsencode(folder)):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                seen[path] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                seen[path] = ("folder",)
            elif os.path.isfile(path):
                with open(path, "rb") as file:
                    seen[path] = (hashlib.sha256(file.read()).hexdigest(), os.stat(path).st_mtime_ns)
            else:
                seen[path] = ("special",)
    return seen


def assert_one_line_error(code: int, out: str, err: str, *names: object) -> str:
    """Exit code 2 and one `trilemma: error:` line naming each of `names` (printable)."""
    assert code == 2, (code, out, err)
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("trilemma: error: ") and "Traceback" not in err, err
    assert err[:-1].isprintable(), err
    for name in names:
        assert printable(name) in err, (name, err)
    return err[len("trilemma: error: "):-1]
