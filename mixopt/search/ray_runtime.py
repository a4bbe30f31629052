"""Connecting to Ray: reuse a running runtime, join a cluster, or start an embedded one.

* Ray already initialised in this process (tests, notebooks): reused and left running.
* ``address`` (``--address``), else ``cfg.ray.address``, else ``RAY_ADDRESS``: connect to that cluster.
  Token auth (Ray clusters started with ``ray start`` have it on) is read by Ray itself from
  ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN`` in the environment; mixopt passes the environment through and
  never logs the token.
* Otherwise an embedded runtime on this machine: ``num_cpus`` from ``cfg.ray.num_cpus``, object store
  capped at ``cfg.ray.object_store_memory``, no dashboard, bound to 127.0.0.1; shut down when the search
  ends.

The process's own SIGTERM handler survives ``ray.init`` (Ray replaces it with an abort).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

from mixopt.errors import MixoptError
from mixopt.security import redact_uri

__all__ = ["ray_session"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def ray_session(cfg, address: str | None = None) -> Iterator[object]:
    """Yield the ``ray`` module with a usable runtime; shut down only what this call started."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    address = address or cfg.ray.address or os.environ.get("RAY_ADDRESS")
    env = {"TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(max(1, int(cfg.search.cpus_per_proxy)))}
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if address:
            log.info("connecting to Ray at %s", redact_uri(address))
            ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
        else:
            ray.init(
                num_cpus=cfg.ray.num_cpus,
                object_store_memory=cfg.ray.object_store_memory,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": env},
                _node_ip_address="127.0.0.1",  # embedded: listen on loopback only
            )
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"Ray at {redact_uri(address)}" if address else "an embedded Ray runtime"
        raise MixoptError(f"could not start/connect to {where}: {redact_uri(str(e).splitlines()[0])}") from None
    _restore_sigterm(sigterm)
    try:
        yield ray
    finally:
        ray.shutdown()


def _restore_sigterm(handler) -> None:
    """Put back the SIGTERM handler the process had before ``ray.init``: Ray's core worker installs one that
    dumps a stack and aborts, which would bypass ``mixopt search``'s orderly stop (``mixopt cancel``)."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
