"""Describing a dependency's failure in one log line, without its text or a traceback.

A dependency that fails (the database, Redis, storage, the scanner, the model) is an event in
production, not a bug: one warning line naming the exception's class and its innermost cause is
enough to tell a refusal from a reset or a timeout, and never carries the driver's text (which
may quote a value). A failure of any other kind is a bug of ours and keeps its traceback.
"""

from __future__ import annotations

import logging

from orbsurv.domain.errors import DependencyUnavailable

#: What a dependency's failure looks like from the application side: the ports' own error, and
#: the socket's and the clock's when they escape an adapter.
DEPENDENCY_FAULTS: tuple[type[Exception], ...] = (DependencyUnavailable, OSError, TimeoutError)


def root_cause(exc: BaseException) -> str:
    """`` (<class of the innermost cause>[ <SQLSTATE>])``, or ``""`` when nothing caused it:
    enough to tell a refusal from a reset or a timeout in the log, never the driver's text."""
    cause: BaseException | None = exc.__cause__ or exc.__context__
    root: BaseException | None = None
    state: str | None = None
    for _ in range(8):
        if cause is None:
            break
        root = cause
        state = state or getattr(cause, "sqlstate", None)
        cause = cause.__cause__ or cause.__context__
    if root is None:
        return ""
    return f" ({type(root).__name__}{f' {state}' if state else ''})"


def describe(exc: BaseException) -> str:
    """``<class>`` or ``<class> <- <class of its innermost cause>``, for a one-line log."""
    cause = root_cause(exc).strip(" ()")
    return f"{type(exc).__name__} <- {cause}" if cause else type(exc).__name__


def log_failure(
    logger: logging.Logger,
    exc: BaseException,
    message: str,
    *args: object,
    faults: tuple[type[BaseException], ...] = DEPENDENCY_FAULTS,
) -> None:
    """Log ``message % args`` at warning level: one line naming the cause when ``exc`` is a
    dependency's failure (one of ``faults``; an adapter adds its client's own errors), with its
    traceback otherwise."""
    if isinstance(exc, faults):
        logger.warning(message + " (%s)", *args, describe(exc))
    else:
        logger.warning(message, *args, exc_info=exc)
