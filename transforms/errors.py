"""The one exception type that the angiogram loader raises for bad input, and how other failures become its reasons."""

from __future__ import annotations

import logging
from contextlib import contextmanager

PYDICOM_LOGGERS = (logging.getLogger("pydicom"), logging.getLogger("pydicom.pixels.decoders.base"))


class AngiogramReadError(ValueError):
    """A file could not be used as an angiogram.

    Args:
        path: the file that was rejected.
        reason: a short, human-readable reason (for example "no pixel data").
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


def first_line(exc: BaseException) -> str:
    """"ExceptionType: first line of its message", the detail a reason quotes from a library's exception."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


@contextmanager
def read_errors(path):
    """Lets AngiogramReadError through and turns any other exception raised inside into one naming ``path``."""
    try:
        yield
    except AngiogramReadError:
        raise
    except Exception as exc:
        raise AngiogramReadError(path, f"unreadable input ({first_line(exc)[:300]})") from None


@contextmanager
def quiet_pydicom():
    """Silences pydicom's logger (its plugin tracebacks and warnings) while our own reasons are built."""
    was = [log.disabled for log in PYDICOM_LOGGERS]
    for log in PYDICOM_LOGGERS:
        log.disabled = True
    try:
        yield
    finally:
        for log, state in zip(PYDICOM_LOGGERS, was):
            log.disabled = state
