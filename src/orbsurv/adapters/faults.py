"""Describing a dependency's failure in one log line, without its text."""

from __future__ import annotations


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
