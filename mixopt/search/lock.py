"""One writer per job: an OS file lock on ``<job_dir>/.lock`` that records who holds it.

``mixopt search`` holds the lock for its whole session, ``mixopt propose`` / ``report`` while they write
(``proposal.json``, the MLflow back-fill). A second writer does not wait: it gets a one-line
:class:`JobLockedError` naming the holder's pid, host and start time. The lock is ``fcntl.flock``: the
kernel drops it when the holder exits, however it exits (SIGKILL included), so a stale ``.lock`` file never
blocks anyone; its text is only there to say who holds it. On a network filesystem ``flock`` is only as
reliable as the filesystem's own locking: give each job one driver machine.

>>> with JobLock("/tmp/jobs/demo"):      # doctest: +SKIP
...     ...                               # the only writer of jobs/demo until the block ends
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from mixopt.errors import MixoptError

__all__ = ["LOCK_FILE", "JobLock", "JobLockedError"]

LOCK_FILE = ".lock"


class JobLockedError(MixoptError):
    """Another process holds the job's lock."""


class JobLock:
    """The job's exclusive lock. ``acquire()`` (or ``with``) takes it without waiting, ``release()`` drops it.

    job_dir: the job folder (created if missing when ``create``; else a missing job is a one-line error).
    purpose: what the holder is doing (``search``, ``report``), recorded in the lock file and shown to the
    next writer.
    """

    def __init__(self, job_dir: str | Path, purpose: str = "search", *, create: bool = True):
        self.job_dir = Path(job_dir)
        self.path = self.job_dir / LOCK_FILE
        self.purpose = purpose
        self.create = create
        self._fh = None

    def acquire(self) -> JobLock:
        if not self.create and not self.job_dir.is_dir():
            raise MixoptError(f"{self.job_dir}: no search job here yet (run `mixopt search` first)")
        try:
            self.job_dir.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+")  # noqa: SIM115 - held open until release(); "a+" never truncates the holder's note
        except OSError as e:
            raise MixoptError(f"{self.job_dir}: cannot create the job folder ({e.strerror}: {e.filename})") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read()
            fh.close()
            raise JobLockedError(f"{self.job_dir}: {_describe(holder)}; wait for it to finish or stop it, then "
                                 f"retry (`mixopt status` shows its progress)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                             "since": time.time()}))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is None:
            return
        try:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
        finally:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> JobLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(text: str) -> str:
    """'a search (pid 123 on host h, since 12:00:01) holds the job' from the lock file's note."""
    try:
        d = json.loads(text)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(d["since"])))
        return (f"another {d.get('purpose', 'search')} holds this job (pid {d['pid']} on host {d['host']}, "
                f"since {since})")
    except (ValueError, KeyError, TypeError):
        return "another process holds this job"
