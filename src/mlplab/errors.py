"""Exception types. Library code raises these; the CLI turns them into one-line messages.

Every error a user can cause derives from :class:`MlplabError`, so callers (and the CLI)
can catch exactly the project's own errors and let genuine bugs surface as tracebacks.
"""

from __future__ import annotations


class MlplabError(Exception):
    """Base class of every error mlplab raises on bad input or a failed run."""

    exit_code = 2


class ConfigError(MlplabError, ValueError):
    """An option, config file or spec holds an unknown key, a wrong type or a bad value."""


class DataError(MlplabError):
    """A dataset could not be found, read, verified or fetched."""


class DataFormatError(DataError, ValueError):
    """A data file is not valid IDX (or gzip), or its contents are inconsistent."""


class ChecksumError(DataError):
    """A file's SHA-256 does not match the expected value."""


class DownloadError(DataError):
    """Every source of a dataset failed."""


class ModelFileError(MlplabError, ValueError):
    """A model file is missing, truncated, foreign, inconsistent or from a future version."""


class DivergenceError(MlplabError, FloatingPointError):
    """Training produced a non-finite or exploding loss."""

    def __init__(self, message: str, epoch: int):
        super().__init__(message)
        self.epoch = epoch


class TrainingInterrupted(MlplabError):
    """Training was stopped by a signal (SIGINT/SIGTERM) at a minibatch boundary."""

    exit_code = 130


class SweepInterrupted(MlplabError):
    """An experiment run was stopped by a signal; finished cells are cached, the rest rerun."""

    exit_code = 130
