"""User-facing errors.

Every error a user can cause (bad config, bad table, bad weights) is a :class:`MixoptError` whose message
is one line that names the culprit (file, key, column, domain). The CLI prints it as ``error: <message>``
and exits with status 2; nothing half-written is left behind by the code that raised it.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "MixoptError", "TableError"]


class MixoptError(Exception):
    """A problem the user can fix; the message is one line."""


class ConfigError(MixoptError, ValueError):
    """An invalid job configuration (unknown key, wrong type, bad value)."""


class DataError(MixoptError, ValueError):
    """Bad input data: missing/empty source, unknown text field, bad weights, too-short splits."""


class TableError(MixoptError, ValueError):
    """A malformed run table (missing columns, no valid rows, bad fidelity or cost column)."""
