"""Errors a user can cause and fix. The CLI prints them as one line, never a traceback."""

import os


class TrilemmaError(Exception):
    """Base class: the message says what was wrong and where."""


class DataError(TrilemmaError):
    """A data spec, file or folder cannot be used."""


class RunError(TrilemmaError):
    """A run directory or checkpoint is missing, incomplete or inconsistent."""


class TrainingDiverged(TrilemmaError):
    """A loss became NaN or infinite; training stops instead of training through it."""


class UnsupportedRequest(TrilemmaError):
    """A family was asked for something it cannot do, or an option is out of range."""


def printable(text: object) -> str:
    """`text` (a message, a path, a file name) as one printable line: bytes of a file name that
    are not UTF-8 shown as ``\\xNN``, control characters (a newline in a name) as escapes.
    Applying it twice changes nothing more."""
    text = os.fsdecode(text) if isinstance(text, bytes) else str(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a file name
        raw = text.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
