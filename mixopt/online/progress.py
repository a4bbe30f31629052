"""The robust default mixer: reward *learning progress* (or excess loss over a reference), gently.

Loss-chasing mixers (ODM) pour samples into domains that cannot be learned, because such domains keep the
highest loss. This mixer instead rewards how fast a domain's loss is *falling*: an unlearnable domain
(noise, high irreducible entropy) stops improving almost at once and drops to the floor, and a domain that
has been learned stops being rewarded too. Per domain ``i`` it keeps two exponential moving averages of
the mean loss (a fast one ``f_i`` and a slow one ``s_i``) and scores

    progress_i = max(s_i - f_i, 0) / share_i          (learning progress per unit of token share)
    lag_i      = max(f_i - ref_i(n), 0)               (with ``reference=`` curves instead, nats)

``share_i`` is a slow average of domain ``i``'s share of the observed tokens, so the score estimates the
loss drop *per token* spent on the domain (the marginal return of sampling it), not a rich-get-richer
reward. The new target is an exponentiated tilt of the prior by the score normalised to ``[0, 1]``,
``target_i ∝ prior_i * exp(temperature * score_i / max(max_j score_j, min_scale))``; the weights move only
part of the way
(``momentum``), so one noisy interval cannot swing them, and every weight stays ``>= min_share``
(default ``0.25 / k``). The first ``warmup`` updates keep the prior and do not enter the averages.

``reference=`` takes per-domain reference curves (:mod:`mixopt.online.reference`: power laws
``{domain: (E, B, beta)}``, flat losses ``{domain: loss}`` or a search's ``proposal.json``); ``ref_i(n)`` is
the loss domain ``i`` should have after ``n`` total training tokens, so the score rewards the domains that
lag their curve. ``reference_loss={domain: loss}`` is the older spelling of flat curves.

Scores come from held-out losses when ``eval_loss`` is passed to :meth:`update` (less noisy), else from
the training-loss sums. Domains not observed in an interval keep their averages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixopt.online.base import Mixer, MixerError, observed_loss, register_mixer
from mixopt.online.reference import load_reference

__all__ = ["ProgressMixer"]


@register_mixer("progress")
class ProgressMixer(Mixer):
    """Learning-progress mixer (``make_mixer("progress", ...)``; the default before ``ado`` and ``reducible``).

    Args:
        fast: rate of the fast loss average (0 < fast <= 1; 0.5).
        slow: rate of the slow loss average (0 < slow < fast; 0.1).
        temperature: strength of the tilt toward high-score domains (3.0; 0 = keep the prior).
        momentum: fraction of the way the weights move to the target each update (0.3).
        warmup: first updates that keep the prior and are not averaged (5): early training is a shared
            transient that would look like progress everywhere.
        reference: optional reference curves (``{domain: (E, B, beta)}`` power laws in total tokens,
            ``{domain: loss}``, or a path to a search's ``proposal.json``); switches the score to the lag
            behind them (DoReMi-style, but gentle).
        reference_tokens: the tokens at which a proposal's targets hold (default: the proposal's own).
        reference_loss: optional per-domain loss floor (dict or ``(k,)``, nats/token): flat reference
            curves, e.g. the proxy search's per-domain losses or a reference run's held-out losses.
        per_token: divide progress by the domain's token share (True).
        min_scale: scores below this are treated as noise: the tilt fades toward the prior when every
            score is under it (0.05 nats with ``reference_loss``, else 0).
        min_share: per-domain floor (``0.25 / k`` when omitted).

    Limitation: progress is myopic. A domain whose returns come late (slow, data-hungry) is under-fed
    compared with the best static mixture; pass ``reference_loss`` when you have one (see docs/online.md).

    >>> from mixopt.online import make_mixer
    >>> m = make_mixer("default", ["noise", "text"], warmup=0, momentum=1.0, min_share=0.0, temperature=1.0)
    >>> _ = m.update(1, [40.0, 40.0], [10, 10])          # first look: both at 4.0 nats
    >>> m.update(2, [40.0, 30.0], [10, 10]).round(3).tolist()  # text improves, noise does not
    [0.269, 0.731]
    """

    name = "progress"

    def __init__(
        self,
        domains,
        initial_weights=None,
        seed=0,
        min_share=None,
        fast: float = 0.5,
        slow: float = 0.1,
        temperature: float = 3.0,
        momentum: float = 0.3,
        warmup: int = 5,
        reference_loss: Any = None,
        per_token: bool = True,
        min_scale: float | None = None,
        reference: Any = None,
        reference_tokens: float | None = None,
    ):
        k = len(domains)
        super().__init__(domains, initial_weights=initial_weights, seed=seed,
                         min_share=(0.25 / max(k, 1)) if min_share is None else min_share)
        if not (0.0 < slow < fast <= 1.0):
            raise MixerError(f"need 0 < slow < fast <= 1, got slow={slow}, fast={fast}")
        if temperature < 0 or not (0.0 < momentum <= 1.0) or warmup < 0:
            raise MixerError(
                f"need temperature >= 0, 0 < momentum <= 1, warmup >= 0; got {temperature}, {momentum}, "
                f"{warmup}"
            )
        self.per_token = bool(per_token)
        if reference is not None and reference_loss is not None:
            raise MixerError("pass either reference= or reference_loss=, not both")
        if min_scale is None:
            min_scale = 0.05 if reference_loss is not None or reference is not None else 0.0
        if min_scale < 0:
            raise MixerError(f"min_scale must be >= 0, got {min_scale}")
        self.min_scale = float(min_scale)
        self.fast, self.slow = float(fast), float(slow)
        self.temperature, self.momentum, self.warmup = float(temperature), float(momentum), int(warmup)
        self.reference_loss = None
        if reference_loss is not None:
            ref = reference_loss
            if isinstance(ref, dict):
                missing = sorted(set(self.domains) - set(ref))
                if missing:
                    raise MixerError(f"reference_loss: missing domain(s) {missing}")
                ref = [ref[d] for d in self.domains]
            ref = np.asarray(ref, dtype=np.float64).reshape(-1)
            if ref.shape != (self.k,) or not np.all(np.isfinite(ref)):
                raise MixerError(f"reference_loss: expected {self.k} finite losses, got {ref.tolist()}")
            self.reference_loss = ref
            reference = dict(zip(self.domains, ref.tolist(), strict=True))
        self.reference = (None if reference is None
                          else load_reference(reference, self.domains, reference_tokens))
        self._state = {
            "fast": np.full(self.k, np.nan),
            "slow": np.full(self.k, np.nan),
            "smooth": self._weights.copy(),
            "share": np.full(self.k, np.nan),
        }
        if self.reference is not None:
            self._state["ref_E"], self._state["ref_B"] = self.reference.E, self.reference.B

    def _after_load(self) -> None:
        if self.reference is not None:
            self.reference.E, self.reference.B = self._state["ref_E"], self._state["ref_B"]

    def scores(self) -> np.ndarray:
        """``(k,)`` current scores (progress or excess loss, nats/token; NaN = never observed)."""
        f, s = self._state["fast"], self._state["slow"]
        if self.reference is not None:
            lag = np.maximum(self.reference.lag(f, self.tokens_seen), 0.0)
            return np.where(np.isfinite(f), lag, np.nan)
        if self.per_token:
            return np.maximum(s - f, 0.0) / np.maximum(self._state["share"], 1e-3)
        return np.maximum(s - f, 0.0)

    def _update(self, step, mean_loss, count, eval_loss):
        loss = observed_loss(mean_loss, eval_loss)
        f, s = self._state["fast"], self._state["slow"]
        if self.n_updates <= self.warmup:
            # The first intervals are dominated by a fast shared transient (learning the unigram
            # distribution); it would look like progress in every domain for a long time, so skip it.
            target = self.prior
        else:
            if count.sum() > 0:
                sh = self._state["share"]
                x = count / count.sum()
                self._state["share"] = np.where(np.isnan(sh), x, sh + self.slow * (x - sh))
            seen = np.isfinite(loss)
            new = seen & np.isnan(f)
            f[new] = s[new] = loss[new]
            old = seen & ~new
            f[old] += self.fast * (loss[old] - f[old])
            s[old] += self.slow * (loss[old] - s[old])
            if self.reference is not None:
                self.reference.calibrate(f, self.tokens_seen)
            sc = self.scores()
            fin = np.isfinite(sc)
            sc = np.where(fin, sc, np.mean(sc[fin]) if fin.any() else 0.0)
            top = max(sc.max(), self.min_scale)
            z = sc / top if top > 0 else np.zeros(self.k)
            target = self.prior * np.exp(self.temperature * z)
            target = target / target.sum()
        smooth = (1.0 - self.momentum) * self._state["smooth"] + self.momentum * target
        self._state["smooth"] = smooth
        return smooth
