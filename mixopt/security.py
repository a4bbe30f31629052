"""Small guards for the service boundary: where servers listen and where files may be written.

Three habits keep a mixopt deployment safe by default:

* servers (the Ray dashboard / Jobs API, MLflow, ``mixopt ui``) listen on the loopback interface unless
  the user asks otherwise, and asking otherwise prints a warning, because the Ray Jobs API runs arbitrary
  code and MLflow has no authentication of its own;
* names and relative paths that come from a job file or the command line never leave the directory they
  are meant to live in (no ``..``, no absolute paths where a relative one is expected);
* credentials in a URI (``http://user:pass@host``, ``?token=...``) are never printed, logged or stored:
  :func:`redact_uri` is what every message, MLflow param and state file shows, and
  :func:`split_credentials` lets the MLflow client take them from the environment instead of the URI.

>>> check_bind_host("127.0.0.1")
'127.0.0.1'
>>> safe_join("/srv/ws", "jobs", "demo").as_posix()
'/srv/ws/jobs/demo'
>>> redact_uri("http://alice:s3cret@mlflow:5000/?token=abc&x=1")
'http://***@mlflow:5000/?token=***&x=1'
"""

from __future__ import annotations

import ipaddress
import os
import re
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import unquote, urlsplit, urlunsplit

from mixopt.errors import MixoptError

__all__ = [
    "ExposedServerWarning",
    "UnsafePathError",
    "check_bind_host",
    "check_relative",
    "ensure_within",
    "is_loopback",
    "redact_uri",
    "safe_join",
    "split_credentials",
]

_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")
_SECRET_QUERY = re.compile(r"(?i)([?&;](?:[^=&;#]*(?:token|key|secret|passw|pwd|auth|signature|sig|credential)[^=&;#]*)=)"
                           r"[^&;#]*")


class UnsafePathError(MixoptError, ValueError):
    """A path from user input would leave the directory it must stay in."""


class ExposedServerWarning(UserWarning):
    """A server is about to listen on a non-loopback interface."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``127.0.0.0/8``, ``::1``)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_host(host: str, *, what: str = "server") -> str:
    """Return ``host`` unchanged, warning (:class:`ExposedServerWarning`) when it is not loopback.

    ``what`` names the server in the message, e.g. ``check_bind_host(args.host, what="mixopt ui")``.
    An empty host is rejected: it would mean "every interface" to most servers.
    """
    if not host or not host.strip():
        raise MixoptError(f"{what}: empty bind host; use 127.0.0.1 (or 0.0.0.0 to listen everywhere)")
    if not is_loopback(host):
        warnings.warn(
            f"{what} will listen on {host}, reachable from other machines; it has no authentication of its "
            "own — keep it behind a firewall or an authenticating proxy, or bind to 127.0.0.1",
            ExposedServerWarning,
            stacklevel=2,
        )
    return host


def check_relative(part: str) -> str:
    """Return ``part`` if it is a relative path without ``..`` (checked as text, nothing is resolved).

    For paths that live on another machine (a cluster directory), where :func:`ensure_within` cannot
    follow symlinks. Raises :class:`UnsafePathError` otherwise.
    """
    if "\x00" in part:
        raise UnsafePathError(f"path {part!r} contains a NUL byte")
    if PurePosixPath(part).is_absolute() or PureWindowsPath(part).is_absolute() or PureWindowsPath(part).drive:
        raise UnsafePathError(f"path {part!r} must be relative")
    pieces = part.replace("\\", "/").split("/")
    if ".." in pieces:
        raise UnsafePathError(f"path {part!r} must not contain '..'")
    return part


def ensure_within(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Resolve ``path`` (relative paths against ``root``) and check it stays inside ``root``.

    Symlinks are followed, so a link pointing out of ``root`` is caught too. Returns the resolved path;
    raises :class:`UnsafePathError` with a one-line message otherwise.
    """
    root_r = Path(root).expanduser().resolve()
    p = Path(path).expanduser()
    resolved = (p if p.is_absolute() else root_r / p).resolve()
    if resolved != root_r and root_r not in resolved.parents:
        raise UnsafePathError(f"path {str(path)!r} is outside {str(root_r)!r}")
    return resolved


def safe_join(root: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """Join relative ``parts`` under ``root``; reject absolute parts, ``..`` and symlink escapes.

    The result is resolved (absolute). Use it for any path built from a job name, a domain name or a
    relative path found in a config file.
    """
    for part in parts:
        check_relative(os.fspath(part))
    return ensure_within(root, Path(*map(os.fspath, parts)) if parts else ".")


def redact_uri(text: str) -> str:
    """``text`` (a URI, or a message that contains URIs) with credentials replaced by ``***``: the whole
    ``user:password@`` part after a ``scheme://``, and the values of query parameters that look secret
    (``token``, ``key``, ``password``, ``signature``, ...)."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub("***@", text))


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``(uri without user:password@, user, password)``; the user and password are URL-decoded, and both
    are None when the URI carries none."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, unquote(user) or None, unquote(password) if sep else None
