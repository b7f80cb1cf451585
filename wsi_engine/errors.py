"""User-facing errors: one hierarchy, one exit code per family.

Every error a user can cause (bad input file, bad configuration, missing
weights...) is raised as a subclass of :class:`WsiEngineError`. The CLI prints
``str(error)`` as one line and exits with ``error.exit_code``; ``--debug``
shows the full traceback instead. Anything else escaping is a bug.

Exit codes (documented in the README):

==== ==========================================================
0    success
1    a batch finished but some items (slides, stores) failed
2    bad command-line usage (unknown option, missing argument)
3    configuration error (YAML file, preset, option value)
4    slide cannot be read or lacks needed metadata (µm/px)
5    patch store missing, incomplete, or of another schema
6    encoder or checkpoint problem
7    training or label data problem
8    output location problem (not writable, locked by another run)
70   internal error (a bug: please report it with ``--debug`` output)
==== ==========================================================
"""

from __future__ import annotations

from pathlib import Path


class WsiEngineError(Exception):
    """Base class: ``message`` says what failed, ``path`` which file, ``hint`` what to do."""

    exit_code = 3

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class ConfigError(WsiEngineError):
    """A configuration file, preset name or option value is invalid."""

    exit_code = 3


class SlideError(WsiEngineError):
    """A slide cannot be opened or read, or lacks metadata such as µm/px."""

    exit_code = 4


class StoreError(WsiEngineError):
    """A patch store is missing, incomplete, or lacks a needed array."""

    exit_code = 5


class EncoderError(WsiEngineError):
    """An encoder definition, its weights or its checkpoint file is unusable."""

    exit_code = 6


class DataError(WsiEngineError):
    """Labels, splits or features are inconsistent or unusable for training."""

    exit_code = 7


class OutputError(WsiEngineError):
    """An output location cannot be written, or another run holds it."""

    exit_code = 8


class BatchFailures(WsiEngineError):
    """Some items of a batch failed; the others completed (details in the report)."""

    exit_code = 1


INTERNAL_ERROR_EXIT_CODE = 70


def describe(error: BaseException) -> str:
    """One-line reason for a report: the message and hint of engine errors, else type and text."""
    if isinstance(error, WsiEngineError):
        return f"{error.message} ({error.hint})" if error.hint else error.message
    return f"internal error: {type(error).__name__}: {error}"
