"""Input and output of user files, in one place.

- `atomic`: the one writer: temporary file, fsync, rename, fsync of the folder.
"""

from trilemma.io.atomic import (
    fsync_directory,
    jsonable,
    write_atomic,
    write_bytes,
    write_json,
    write_npz,
    write_text,
)

__all__ = ["fsync_directory", "jsonable", "write_atomic", "write_bytes", "write_json", "write_npz",
           "write_text"]
