"""Orbsurv: one backend for the marketing site, the user portal and the operator console."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("orbsurv")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"
