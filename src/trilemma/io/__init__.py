"""Input and output of user files, in one place, so that every command gives the same verdict
on the same file.

- `arrays`: the one reader of .npz/.npy files (``x``, ``y``, ``provenance``), never unpickling;
  `npy` underneath it checks what a file declares against the bytes it holds before NumPy
  allocates anything.
- `images`: the one converter of images between the user's forms (uint8, integers 0-255, bool
  or floats in [0, 1]; NHW, NHWC or NCHW) and the canonical uint8 NCHW, and on to a run's
  model space and back.
- `atomic`: the one writer: temporary file, fsync, rename, fsync of the folder.

Folders of image files are read by `trilemma.data.files`, which turns them into a data set.
"""

from trilemma.io.arrays import (
    ArrayFile,
    check_finite,
    load_arrays,
    read_array_file,
    read_label_file,
)
from trilemma.io.atomic import (
    fsync_directory,
    jsonable,
    write_atomic,
    write_bytes,
    write_json,
    write_npz,
    write_text,
)
from trilemma.io.images import (
    ImageStack,
    as_images,
    as_uint8_nchw,
    describe_shape,
    images_sha256,
    to_model_space,
    to_pixels,
)

__all__ = [
    "ArrayFile",
    "ImageStack",
    "as_images",
    "as_uint8_nchw",
    "check_finite",
    "describe_shape",
    "fsync_directory",
    "images_sha256",
    "jsonable",
    "load_arrays",
    "read_array_file",
    "read_label_file",
    "to_model_space",
    "to_pixels",
    "write_atomic",
    "write_bytes",
    "write_json",
    "write_npz",
    "write_text",
]
