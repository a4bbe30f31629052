"""Extra proxy presets defined by the experiment config, registered in every process that trains proxies.

The search layer trains proxies by preset *name* (``ProxyConfig.preset``), so a custom proxy size must be
in ``proxies.config.PRESETS`` in the driver and in every Ray worker. The driver calls :func:`register`;
Ray workers run :func:`register_from_env` as their ``worker_process_setup_hook`` and read the configs from
the ``TRANSFER_PRESETS`` environment variable (JSON ``{name: ProxyConfig.to_dict()}``).
"""

from __future__ import annotations

import json
import os

__all__ = ["ENV_VAR", "register", "register_from_env"]

ENV_VAR = "TRANSFER_PRESETS"


def register(configs: dict[str, dict]) -> None:
    """Add ``{name: ProxyConfig dict}`` to ``proxies.config.PRESETS`` (replacing same-named entries)."""
    from mixopt.proxies.config import PRESETS, ProxyConfig

    for name, d in configs.items():
        PRESETS[name] = ProxyConfig.from_dict(d | {"name": name})


def register_from_env() -> None:
    """Ray ``worker_process_setup_hook``: register the presets given in ``$TRANSFER_PRESETS``."""
    raw = os.environ.get(ENV_VAR)
    if raw:
        register(json.loads(raw))
