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

import errno
from pathlib import Path
from typing import Any

CATEGORIES: dict[str, int] = {}
"""Exit code of each error category named in batch reasons (``store error`` → 5), filled by
the classes below."""


class WsiEngineError(Exception):
    """Base class: ``message`` says what failed, ``path`` which file, ``hint`` what to do.

    A family declares its exit code and report category as class keywords:
    ``class StoreError(WsiEngineError, exit_code=5, category="store error")``.
    """

    exit_code: int = 3
    category: str = "error"
    """First words of the family's :func:`describe` text."""

    def __init_subclass__(
        cls, *, exit_code: int | None = None, category: str | None = None, **kwargs: Any
    ):
        """Set the family's exit code and category; a subclass without them inherits both."""
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code
        if category is not None:
            cls.category = category
            CATEGORIES[category] = cls.exit_code

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


class ConfigError(WsiEngineError, exit_code=3, category="configuration error"):
    """A configuration file, preset name or option value is invalid."""


class SlideError(WsiEngineError, exit_code=4, category="slide error"):
    """A slide cannot be opened or read, or lacks metadata such as µm/px."""


class StoreError(WsiEngineError, exit_code=5, category="store error"):
    """A patch store is missing, incomplete, or lacks a needed array."""


class EncoderError(WsiEngineError, exit_code=6, category="encoder error"):
    """An encoder definition, its weights or its checkpoint file is unusable."""


class DataError(WsiEngineError, exit_code=7, category="data error"):
    """Labels, splits or features are inconsistent or unusable for training."""


class OutputError(WsiEngineError, exit_code=8, category="output error"):
    """An output location cannot be written, or another run holds it."""


class BatchFailures(WsiEngineError, exit_code=1):
    """Some items of a batch failed; the others completed (details in the report)."""


INTERNAL_ERROR_EXIT_CODE = 70


ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
"""OS errors that are the environment's, not the engine's: reported as :class:`OutputError`."""


def output_error(error: BaseException, path: str | Path | None = None) -> OutputError:
    """An :class:`OutputError` naming ``path`` (or the OS error's file) for a failed write.

    torch's zip writer reports a full disk as ``RuntimeError`` without a file
    name; ``path`` names it then.
    """
    code = getattr(error, "errno", None)
    reason = ENVIRONMENT_ERRNOS.get(code) if code is not None else None
    if reason is None:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0][:200]
    where = getattr(error, "filename", None) or path
    return OutputError(
        f"cannot write: {reason}",
        path=where,
        hint="free space, or choose a writable output location",
    )


def as_user_error(error: BaseException) -> WsiEngineError | None:
    """``error`` as the user error it is (itself, or an environment OSError), or ``None`` for a bug."""
    if isinstance(error, WsiEngineError):
        return error
    if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
        return output_error(error)
    return None


def describe(error: BaseException) -> str:
    """One-line reason for a batch report, starting with its category (``store error: ...``).

    Environment OS errors (disk full, read-only, permission denied) are output
    errors naming their file; anything else unknown is an internal error.
    """
    known = as_user_error(error)
    if known is None:
        return f"internal error: {type(error).__name__}: {error}"
    return f"{known.category}: {known}"


def exit_code_of(error: BaseException) -> int:
    """The exit code ``error`` stands for (70 for a bug)."""
    known = as_user_error(error)
    return INTERNAL_ERROR_EXIT_CODE if known is None else known.exit_code


def batch_failures(
    message: str, codes: list[int], n_items: int, *, path: str | Path | None = None, hint: str
) -> BatchFailures:
    """The error of a batch whose failed items had exit ``codes``: exit 1, or, when every one of
    the ``n_items`` failed for the same category, that category's code (a single bad store
    given alone exits as that store's error would)."""
    error = BatchFailures(message, path=path, hint=hint)
    if codes and len(codes) == n_items and len(set(codes)) == 1 and codes[0] not in (0, 1, 70):
        error.exit_code = codes[0]
    return error


def exit_code_of_reason(reason: str) -> int:
    """The exit code of a reason holding a :func:`describe` text (its first category; 1 if none).

    Reasons may wrap that text (``embed: store error: ...``).
    """
    found = [(reason.find(f"{name}: "), code) for name, code in CATEGORIES.items()]
    found = [(at, code) for at, code in found if at >= 0]
    return min(found, key=lambda item: item[0])[1] if found else 1
