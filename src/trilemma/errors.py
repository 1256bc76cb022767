"""Errors a user can cause and fix. The CLI prints them as one line, never a traceback."""


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
