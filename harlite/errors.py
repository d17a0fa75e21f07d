"""harlite's exceptions. The library raises these (it knows nothing of Click); the CLI prints the message
as one line and exits 2 (bad input or environment), keeping exit 1 for a check that failed.

Every message says what is wrong and how to fix it, and names the file (and line) when there is one.
"""

from __future__ import annotations


class HarliteError(Exception):
    """Bad input or a bad environment: the message is the cause and the fix, on one line."""


class DataError(HarliteError):
    """A recording or dataset that cannot be used (format, units, rate, labels, size)."""


class BundleError(HarliteError):
    """A bundle or model that cannot be trusted or used: malformed manifest, missing or altered artifact,
    a path outside the bundle, a model format that could run code."""


class ToolMissing(HarliteError):
    """A compiler, emulator or other program harlite needs is not installed."""
