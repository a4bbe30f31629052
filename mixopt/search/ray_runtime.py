"""Connecting to Ray: reuse a running runtime, join a cluster, or start an embedded one -- in the background.

* Ray already initialised in this process (tests, notebooks, a service): reused and left running.
* ``address`` (``--address``), else ``cfg.ray.address``, else ``RAY_ADDRESS``: connect to that cluster.
  Token auth (Ray clusters started with ``ray start`` have it on) is read by Ray itself from
  ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN`` in the environment; mixopt passes the environment through and
  never logs the token.
* Otherwise an embedded runtime on this machine: ``num_cpus`` from ``cfg.ray.num_cpus``, object store
  capped at ``cfg.ray.object_store_memory``, no dashboard UI; shut down when the search
  ends. Its workers get ``OMP_NUM_THREADS`` (``search.cpus_per_proxy``) through the raylet's environment
  (a cluster gets it as a ``runtime_env``), so the raylet's prestarted workers serve the first tasks.

:func:`ray_session` returns at once: the runtime starts (or connects) in a thread while the caller
prepares the data and the initial design, and :meth:`RayRuntime.ready` waits for it. As soon as it is up,
``warm`` tasks import torch and the proxy trainer in the worker processes (a cold worker spends seconds on
that before its first proxy), so the first proxies start on warm workers. The thread that starts an
embedded runtime also stops it and lives as long as it: Ray ties its processes to the thread that
spawned them.

The process's own SIGTERM handler survives ``ray.init`` (Ray's core worker replaces it with an abort that
would bypass ``mixopt search``'s orderly stop): :meth:`RayRuntime.ready` puts it back from the main thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

from mixopt.errors import MixoptError
from mixopt.security import redact_uri

__all__ = ["RayRuntime", "ray_session"]

log = logging.getLogger(__name__)


class _QuietThreadStart(logging.Filter):
    """Drop Ray's note that a ``ray.init`` outside the main thread installs no SIGTERM handler:
    :func:`ray_session` installs the same one from the main thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _init(cfg, address: str | None) -> bool:
    """Start or join Ray unless it is up in this process; returns whether this call started/joined it."""
    import ray

    if ray.is_initialized():
        return False
    address = address or cfg.ray.address or os.environ.get("RAY_ADDRESS")
    quiet = logging.getLogger("ray._private.worker")
    if not any(isinstance(f, _QuietThreadStart) for f in quiet.filters):
        quiet.addFilter(_QuietThreadStart())
    env = {"TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(max(1, int(cfg.search.cpus_per_proxy)))}
    try:
        if address:
            log.info("connecting to Ray at %s", redact_uri(address))
            ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
        else:
            # The worker environment goes through the raylet's own (it is started from this process), not a
            # runtime_env: a runtime_env gets workers of its own, so the raylet's prestarted workers would
            # sit idle while new ones start for the first proxies (0.5 s vs 4-8 s to the first task here).
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                ray.init(
                    num_cpus=cfg.ray.num_cpus,
                    object_store_memory=cfg.ray.object_store_memory,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    # Asks for loopback, but Ray 2.60 replaces a loopback node IP by the machine's address
                    # and its gRPC servers (GCS, raylet, workers) listen on every interface; Ray's token
                    # auth (on by default) protects them. See docs/search.md, section "Ray".
                    _node_ip_address="127.0.0.1",
                )
            finally:  # this process keeps its own environment
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"Ray at {redact_uri(address)}" if address else "an embedded Ray runtime"
        raise MixoptError(f"could not start/connect to {where}: {redact_uri(str(e).splitlines()[0])}") from None
    return True


class RayRuntime:
    """A Ray runtime being started in the background; :meth:`ready` returns the ``ray`` module once it is up.

    Times (``time.time()``): ``started_at`` (the start was asked for), ``ready_at`` (Ray usable),
    ``warm_at`` (every warm-up task finished, see :meth:`warm_done`).
    """

    def __init__(self, cfg, address: str | None = None, *, warm: int = 0, sigterm=None):
        self.cfg, self.address, self.warm = cfg, address, int(warm)
        self._sigterm = sigterm  # the handler to put back once Ray is up (see ready)
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.warm_at: float | None = None
        self.owned = False  # this object started (or joined) the runtime, so it shuts it down
        self._error: BaseException | None = None
        self._warm_refs: list = []
        self._up, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._main, name="mixopt-ray", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        import ray

        try:
            self.owned = _init(self.cfg, self.address)
        except BaseException as e:  # noqa: BLE001 - handed to the caller by ready()
            self._error = e
        self.ready_at = time.time()
        if self._error is None:
            try:
                self._warm_refs = self._start_warmup(ray)
            except Exception as e:  # noqa: BLE001 - a warm-up is only an optimisation
                log.debug("no worker warm-up: %s", e)
        self._up.set()
        if self.owned:
            self._stop.wait()
            ray.shutdown()

    def _start_warmup(self, ray) -> list:
        from mixopt.search.workers import warm_worker

        if self.warm <= 0:
            return []
        task = ray.remote(warm_worker).options(num_cpus=self.cfg.search.cpus_per_proxy, max_retries=0)
        return [task.remote(int(max(1, self.cfg.search.cpus_per_proxy))) for _ in range(self.warm)]

    def ready(self):
        """Wait for the runtime; return the ``ray`` module (MixoptError when it could not start)."""
        self._up.wait()
        if self._sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None
        if self._error is not None:
            raise self._error
        import ray

        return ray

    def warm_done(self, timeout: float = 0.0) -> float | None:
        """When the last warm-up task finished (``time.time()``), None while one still runs or none ran."""
        if self.warm_at is None and self._warm_refs and self._up.is_set() and self._error is None:
            import ray

            done, rest = ray.wait(self._warm_refs, num_returns=len(self._warm_refs), timeout=timeout)
            if not rest:
                with contextlib.suppress(Exception):  # a warm-up is only an optimisation
                    self.warm_at = max(ray.get(done))
        return self.warm_at

    def close(self) -> None:
        """Shut down what this runtime started (waits for a start still under way)."""
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def ray_session(cfg, address: str | None = None, *, warm: int = 0) -> Iterator[RayRuntime]:
    """Start (or join, or reuse) Ray in the background and yield the :class:`RayRuntime`; shut down only
    what this call started. ``warm``: warm-up tasks to run as soon as Ray is up (one per proxy slot)."""
    import ray

    sigterm = None
    if not ray.is_initialized() and threading.current_thread() is threading.main_thread():
        sigterm = signal.getsignal(signal.SIGTERM)
        if sigterm in (signal.SIG_DFL, None):
            # what ray.init does in the main thread (it cannot from ours): SIGTERM exits, so cleanup runs
            sigterm = _exit_on_sigterm
            signal.signal(signal.SIGTERM, sigterm)
    runtime = RayRuntime(cfg, address, warm=warm, sigterm=sigterm)
    try:
        yield runtime
    finally:
        runtime.close()


def _exit_on_sigterm(signum, frame) -> None:
    sys.exit(signum)
