"""The mixer protocol and its registry.

A *mixer* is an online policy that changes the mixture weights during training. Every mixer takes the
same inputs: per-domain training-loss **sums** and token **counts** accumulated since its last update
(sums and counts, not means, so that they can be all-reduced across ranks before the update), and
optionally per-domain held-out losses. It returns the new weights, a ``(k,)`` float64 array on the simplex
with every entry ``>= min_share``.

>>> from mixopt.online import make_mixer
>>> m = make_mixer("stratified", ["code", "web"])
>>> m.update(10, [20.0, 30.0], [10, 10]).round(2).tolist()
[0.5, 0.5]

A new mixer is one file with a :class:`Mixer` subclass decorated by :func:`register_mixer`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from mixopt.errors import MixoptError
from mixopt.registry import Registry

__all__ = [
    "Mixer",
    "MixerError",
    "apply_floor",
    "observed_loss",
    "available_mixers",
    "make_mixer",
    "mixer_defaults",
    "register_mixer",
]

class MixerError(MixoptError, ValueError):
    """Bad mixer name, parameters, weights or update inputs."""


MIXERS = Registry("mixer", aliases={"default": "reducible", "uniform": "stratified"}, error=MixerError)
# importing these modules registers the built-in mixers
MIXERS.load_on_first_use("mixopt.online.ado", "mixopt.online.aioli", "mixopt.online.odm", "mixopt.online.reducible",
                         "mixopt.online.progress", "mixopt.online.static")


def _jsonable(v: Any) -> Any:
    """``v`` as strict-JSON Python values: arrays to lists, non-finite floats to ``None``."""
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "f":
            return np.where(np.isfinite(v), v, None).tolist()
        return v.tolist()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def register_mixer(*names: str) -> Callable[[type[Mixer]], type[Mixer]]:
    """Class decorator: make ``make_mixer(name, ...)`` build this class for each of ``names``."""
    return MIXERS.register(*names)


def mixer_defaults(name: str) -> dict[str, str]:
    """``{parameter: repr(default)}`` of a mixer's constructor (``name`` may be an alias such as ``"default"``):
    what a cache of runs must match, so that a changed default is not served from it."""
    sig = inspect.signature(MIXERS.get(MIXERS.resolve(name)).__init__)
    return {k: repr(p.default) for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def available_mixers() -> list[str]:
    """Registered mixer names (aliases such as ``"default"`` included), sorted."""
    return sorted(MIXERS.names(aliases=True))


def make_mixer(
    name: str,
    domains: Sequence[str],
    initial_weights: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
    **params: Any,
) -> Mixer:
    """Build a mixer by name (``"default"`` is the reducible-loss mixer, ``"reducible"``).

    Args:
        name: one of :func:`available_mixers`.
        domains: domain names, in the order every per-domain array uses.
        initial_weights: the prior / starting mixture (dict by domain or ``(k,)``); uniform when omitted.
        seed: seeds every random choice the mixer makes.
        **params: the mixer's own parameters (see each class); unknown ones raise :class:`MixerError`.
    """
    return MIXERS.create(name, domains=domains, initial_weights=initial_weights, seed=seed, **params)


def observed_loss(mean_loss: np.ndarray, eval_loss: np.ndarray | None) -> np.ndarray:
    """``(k,)`` the loss a mixer reads: held-out where it was measured (finite ``eval_loss``), else the
    training mean of the interval."""
    return mean_loss if eval_loss is None else np.where(np.isfinite(eval_loss), eval_loss, mean_loss)


def apply_floor(w: np.ndarray, min_share: float) -> np.ndarray:
    """Map non-negative ``w`` onto the simplex with every entry ``>= min_share``.

    ``min_share + (1 - k * min_share) * w / sum(w)``: order-preserving and the identity when
    ``min_share == 0``.
    """
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    s = w.sum()
    w = w / s if s > 0 and np.isfinite(s) else np.full(len(w), 1.0 / len(w))
    return min_share + (1.0 - len(w) * min_share) * w


def _run_length_ok(total_steps: Any) -> bool:
    """Whether ``total_steps`` is a run length a mixer takes: None or a whole number >= 1."""
    return total_steps is None or (isinstance(total_steps, (int, np.integer)) and total_steps >= 1)


def _as_weights(w: Any, domains: list[str], what: str) -> np.ndarray:
    k = len(domains)
    if isinstance(w, Mapping):
        unknown = sorted(set(w) - set(domains))
        if unknown:
            raise MixerError(f"{what}: unknown domain(s) {unknown}; domains are {domains}")
        w = [float(w.get(d, 0.0)) for d in domains]
    arr = np.asarray(w, dtype=np.float64).reshape(-1)
    if arr.shape != (k,):
        raise MixerError(f"{what}: expected {k} weights (one per domain), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or arr.sum() <= 0:
        raise MixerError(f"{what}: weights must be finite, non-negative and not all zero, got {arr.tolist()}")
    return arr / arr.sum()


class Mixer(ABC):
    """Base class: validation, weights on the simplex with a floor, state round trip.

    Subclasses implement :meth:`_update` (return new non-negative weights, any scale) and put their
    numeric state in ``self._state`` (a dict of numpy arrays / floats / ints), which
    :meth:`state_dict` saves.

    Attributes:
        domains: domain names (length ``k``).
        prior: ``(k,)`` the initial mixture (uniform when not given).
        min_share: every weight stays ``>= min_share`` (``0 <= k * min_share <= 1``).
        n_updates: number of :meth:`update` calls so far.
        tokens_seen: total tokens (all domains) behind the losses passed to :meth:`update` so far.
        total_steps: the run's length in optimiser steps, when known (:meth:`set_total_steps`; the
            trainer integrations set it).
        cooldown: the last ``cooldown`` fraction of ``total_steps`` trains on the prior mixture (the mixer
            keeps learning but its weights are not used); 0 (off) unless a mixer sets it.
    """

    name: ClassVar[str] = "base"
    default_min_share: ClassVar[float] = 0.0
    cooldown: float = 0.0

    def __init__(
        self,
        domains: Sequence[str],
        initial_weights: Any = None,
        seed: int = 0,
        min_share: float | None = None,
    ) -> None:
        self.domains = [str(d) for d in domains]
        k = len(self.domains)
        if k == 0 or len(set(self.domains)) != k:
            raise MixerError(f"domains must be non-empty and unique, got {self.domains}")
        self.prior = (
            np.full(k, 1.0 / k) if initial_weights is None else _as_weights(initial_weights, self.domains,
                                                                             "initial_weights")
        )
        ms = self.default_min_share if min_share is None else float(min_share)
        if not (ms >= 0.0 and k * ms <= 1.0 + 1e-12):
            raise MixerError(f"min_share must be in [0, 1/k] = [0, {1.0 / k:.4g}], got {ms}")
        self.min_share = ms
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._weights = apply_floor(self.prior, self.min_share)
        self.n_updates = 0
        self.tokens_seen = 0.0
        self.total_steps: int | None = None
        self._state: dict[str, Any] = {}

    @property
    def k(self) -> int:
        return len(self.domains)

    def set_total_steps(self, total_steps: int | None) -> None:
        """The run's length in optimiser steps (None: unknown, no cooldown); MixerError unless >= 1."""
        if not _run_length_ok(total_steps):
            raise MixerError(f"total_steps must be a whole number >= 1 (or None), got {total_steps!r}")
        self.total_steps = None if total_steps is None else int(total_steps)

    def in_cooldown(self, step: int) -> bool:
        """Whether an update at ``step`` falls in the final ``cooldown`` fraction of ``total_steps``."""
        return bool(self.cooldown > 0 and self.total_steps
                    and step >= (1.0 - self.cooldown) * self.total_steps)

    @property
    def weights(self) -> np.ndarray:
        """``(k,)`` current mixture (a copy)."""
        return self._weights.copy()

    def weights_dict(self) -> dict[str, float]:
        return {d: float(w) for d, w in zip(self.domains, self._weights, strict=True)}

    def update(
        self,
        step: int,
        train_loss_sum: Any,
        train_token_count: Any,
        eval_loss: Any = None,
    ) -> np.ndarray:
        """Take one update from what was observed since the last one and return the new weights.

        Args:
            step: the optimiser step (used for decaying schedules; must not decrease).
            train_loss_sum: ``(k,)`` summed per-token training loss (nats) per domain since the last update.
            train_token_count: ``(k,)`` tokens those sums cover; a domain with 0 tokens was not observed
                this interval and keeps its previous statistics.
            eval_loss: optional ``(k,)`` mean held-out loss per domain (nats/token; NaN = not measured).
        Returns:
            ``(k,)`` float64 weights on the simplex, each ``>= min_share``.
        """
        s = np.asarray(train_loss_sum, dtype=np.float64).reshape(-1)
        c = np.asarray(train_token_count, dtype=np.float64).reshape(-1)
        if s.shape != (self.k,) or c.shape != (self.k,):
            raise MixerError(
                f"update: expected per-domain arrays of length {self.k}, got {s.shape[0]} sums and "
                f"{c.shape[0]} counts"
            )
        if np.any(c < 0) or not np.all(np.isfinite(c)):
            raise MixerError(f"update: token counts must be finite and >= 0, got {c.tolist()}")
        e = None
        if eval_loss is not None:
            e = np.asarray(eval_loss, dtype=np.float64).reshape(-1)
            if e.shape != (self.k,):
                raise MixerError(f"update: eval_loss must have {self.k} entries, got {e.shape[0]}")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(c > 0, s / np.where(c > 0, c, 1.0), np.nan)
        # A diverged step (inf/NaN loss) is treated as "not observed" rather than poisoning the state.
        mean[~np.isfinite(mean)] = np.nan
        self.n_updates += 1
        self.tokens_seen += float(c.sum())
        w = np.asarray(self._update(int(step), mean, c, e), dtype=np.float64)
        self._weights = apply_floor(self.prior if self.in_cooldown(int(step)) else w, self.min_share)
        return self.weights

    @abstractmethod
    def _update(self, step: int, mean_loss: np.ndarray, count: np.ndarray, eval_loss: np.ndarray | None):
        """Return new non-negative weights ``(k,)``; ``mean_loss`` is NaN where ``count == 0``."""

    # -- state -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically, as plain JSON-able Python values (strict JSON: a NaN
        statistic, e.g. a domain never observed, is stored as ``null`` and restored as NaN)."""
        arrays = {k: str(v.dtype) for k, v in self._state.items() if isinstance(v, np.ndarray)}
        return {
            "name": self.name,
            "domains": list(self.domains),
            "weights": self._weights.tolist(),
            "n_updates": self.n_updates,
            "tokens_seen": self.tokens_seen,
            "total_steps": self.total_steps,
            "rng": self._rng.bit_generator.state,
            "arrays": arrays,
            "state": {k: _jsonable(v) for k, v in self._state.items()},
        }

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; MixerError if it was saved by another mixer or other domains."""
        if sd.get("name") != self.name or list(sd.get("domains", [])) != self.domains:
            raise MixerError(
                f"cannot load state of mixer {sd.get('name')!r} over {sd.get('domains')} into "
                f"{self.name!r} over {self.domains}"
            )
        missing = [key for key in ("weights", "n_updates", "rng", "state") if key not in sd]
        missing += [f"state.{key}" for key in self._state if key not in (sd.get("state") or {})]
        if missing:
            raise MixerError(f"cannot load state of mixer {self.name!r}: missing {', '.join(missing)}")
        try:  # everything parsed first, so a bad state changes nothing
            weights = np.asarray(sd["weights"], dtype=np.float64).copy()
            n_updates, tokens_seen = int(sd["n_updates"]), float(sd.get("tokens_seen", 0.0))
            arrays = dict(sd.get("arrays", {}))
            state = {k: (np.array(v, dtype=arrays[k]) if k in arrays else v) for k, v in sd["state"].items()}
            rng = np.random.default_rng()
            rng.bit_generator.state = sd["rng"]
        except (TypeError, ValueError, KeyError) as e:
            raise MixerError(f"cannot load state of mixer {self.name!r}: {type(e).__name__}: {e}") from None
        total_steps = sd.get("total_steps")  # absent in older states
        if not _run_length_ok(total_steps):
            raise MixerError(f"cannot load state of mixer {self.name!r}: total_steps {total_steps!r}")
        if weights.shape != (self.k,):
            raise MixerError(f"cannot load state of mixer {self.name!r}: {weights.shape[0] if weights.ndim else 0} "
                             f"weights for {self.k} domains")
        self._weights, self.n_updates, self.tokens_seen = weights, n_updates, tokens_seen  # (absent: 0, older states)
        if self.total_steps is None:  # a length given now (a longer run, say) wins over the saved one
            self.total_steps = total_steps
        self._rng.bit_generator.state = rng.bit_generator.state
        self._state = state
        self._after_load()

    def _after_load(self) -> None:
        """Hook for subclasses whose helpers hold views into ``self._state`` (re-point them here)."""
        return None

    def __repr__(self) -> str:
        w = ", ".join(f"{d}={x:.3f}" for d, x in zip(self.domains, self._weights, strict=True))
        return f"{type(self).__name__}({w})"
