"""Reading .npy and .npz files that may have been built to hurt.

NumPy's own loader trusts what a file declares: a 100-byte .npy whose header says
(10**12,) makes it allocate a terabyte before it notices the bytes are missing, and a
truncated .npz or a zip member that is not an array escapes as an exception of its own
kind. Here every declaration is checked against the bytes that are really there before
NumPy reads anything:

- the file must start with the NumPy or the zip signature (a pickle is named as such and
  never loaded);
- the header must declare a plain dtype (no Python objects) and non-negative sides;
- the declared data must fit in the bytes present: the rest of an .npy file; for an .npz
  member, its size in the zip directory, which a stored member must match byte for byte
  and a deflated one cannot exceed by more than deflate's limit (1032 to 1);
- no array may declare more than `memory_limit()` bytes.

Only then does NumPy read the data (``allow_pickle=False``), so what it allocates is bounded
by the file itself. Every refusal is a `DataError` line that starts with the file's path.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy_format

from trilemma.errors import DataError, printable

__all__ = ["MEMORY_FRACTION", "memory_limit", "read_arrays"]

MEMORY_FRACTION = 0.5  # no single input may declare more than this share of physical memory
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip
DEFLATE_MAX_RATIO = 1032  # deflate never expands a byte into more than 1032 (zlib's technical notes)
# What NumPy, zipfile and zlib raise on bytes they cannot make sense of. Caught only around
# the calls that parse the file, and reported as that file's problem.
PARSE_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error,
                NotImplementedError, RuntimeError, KeyError, IndexError, OverflowError,
                TypeError)


def memory_limit() -> int:
    """Bytes one input may declare: `MEMORY_FRACTION` of this machine's physical memory
    (16 GiB where the machine does not say)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 32 << 30
    return int(total * MEMORY_FRACTION)


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} bytes"


def _declared(stream: IO[bytes], shown: str, member: str = "", available: int | None = None) -> int:
    """Read an .npy header from `stream`; the number of data bytes it declares, after checking
    the dtype, the shape and the memory limit. With `available`, the bytes the file holds
    after the start of the header, the declaration must fit in them. `member` names the array
    of an .npz in messages ("array 'x' ")."""
    where = f"{shown}: {member}"
    version = npy_format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _, dtype = npy_format.read_array_header_2_0(stream)
    else:
        raise DataError(f"{where}has .npy format version {version[0]}.{version[1]}, which is not "
                        "read (plain numeric arrays are saved as 1.0 or 2.0)")
    if dtype.hasobject:
        raise DataError(f"{shown}: holds Python objects, which are never unpickled; "
                        "save plain numeric arrays")
    if any(side < 0 for side in shape):
        raise DataError(f"{where}declares an impossible shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > memory_limit():
        raise DataError(f"{where}declares an array of shape {shape} and dtype {dtype} "
                        f"({_size(nbytes)}), more than {MEMORY_FRACTION:.0%} of this "
                        f"machine's memory ({_size(memory_limit())}); refused before reading")
    if available is not None and nbytes > available - stream.tell():
        raise DataError(f"{where}declares an array of shape {shape} and dtype {dtype} "
                        f"({_size(nbytes)}) but holds only {_size(max(0, available - stream.tell()))} "
                        "of data (truncated or corrupt)")
    return nbytes


def _read_npy(path: Path, shown: str) -> dict[str, np.ndarray]:
    with open(path, "rb") as file:
        _declared(file, shown, available=path.stat().st_size)
        file.seek(0)
        return {"x": npy_format.read_array(file, allow_pickle=False)}


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str, size: int) -> str:
    """The array name of one .npz member, after checking what it declares against the bytes
    there are (`size`, the file's)."""
    name = info.filename.removesuffix(".npy")
    member = f"array '{printable(name)}' "
    where = f"{shown}: {member}"
    if not info.filename.endswith(".npy"):
        raise DataError(f"{shown}: holds '{printable(name)}', which is not an .npy array; an .npz "
                        "holds only arrays")
    if info.flag_bits & 0x1:
        raise DataError(f"{where}is encrypted")
    if info.compress_size > size:
        raise DataError(f"{where}is {_size(info.compress_size)} by the zip directory, in a file of "
                        f"{_size(size)} (corrupt or forged)")
    if info.compress_type == zipfile.ZIP_STORED:
        most = info.compress_size
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        most = info.compress_size * DEFLATE_MAX_RATIO + 64
    else:
        raise DataError(f"{where}is compressed with zip method {info.compress_type}; .npz files "
                        "are read stored or deflated, as numpy.savez and savez_compressed write them")
    if info.file_size > most:
        raise DataError(f"{where}is {_size(info.file_size)} by the zip directory, from "
                        f"{_size(info.compress_size)} of compressed data, which cannot be "
                        "(corrupt or forged)")
    with archive.open(info) as stream:
        _declared(stream, shown, member, available=info.file_size)
    return name


def _read_npz(path: Path, shown: str) -> dict[str, np.ndarray]:
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        names = [_check_member(archive, info, shown, path.stat().st_size) for info in members]
        if len(set(names)) != len(names):
            raise DataError(f"{shown}: holds two arrays of the same name")
        for name, info in zip(names, members, strict=True):
            with archive.open(info) as member:
                arrays[name] = npy_format.read_array(member, allow_pickle=False)
    return arrays


def _reason(error: BaseException) -> str:
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "allow_pickle" in message or "Object arrays" in message:
        return "holds Python objects, which are never unpickled; save plain numeric arrays"
    return f"cannot read as an .npy/.npz file ({type(error).__name__}: {message})"


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npy (as ``x``) or .npz file (by name), whatever its suffix says:
    the first bytes decide, as for NumPy. The caller has checked that `path` is a non-empty
    file."""
    shown = printable(path)
    try:
        with open(path, "rb") as file:
            start = file.read(len(NPY_MAGIC))
        if start.startswith(ZIP_MAGICS):
            return _read_npz(path, shown)
        if start == NPY_MAGIC:
            return _read_npy(path, shown)
    except MemoryError:
        raise DataError(f"{shown}: too large to read into this machine's memory") from None
    except PARSE_ERRORS as error:
        raise DataError(f"{shown}: {_reason(error)}") from None
    if start[:1] == b"\x80":
        raise DataError(f"{shown}: is a pickle (Python objects), which is never unpickled; "
                        "save plain numeric arrays with numpy.save or numpy.savez")
    raise DataError(f"{shown}: not an .npy/.npz file (it starts with neither the NumPy nor "
                    "the zip signature)")
