"""Aioli mixer: estimate how training on each domain lowers every domain's loss in short probe rounds,
then take one exponentiated-gradient step on the mixture per round.

After Chen et al., "Aioli: A Unified Optimization Framework for Language Model Data Mixing" (2024),
written from the paper's description. Its mixing law is linear and dynamic: over a short stretch of
training on mixture ``w``, ``L_{t+1} - L_t ≈ -A_t w`` with ``A[i, j]`` ``(k, k)`` the loss drop of domain
``i`` per interval spent on domain ``j``. Training is cut into rounds of ``sweeps * k * probe_len / delta``
mixer updates:

1. **LearnParams** (the first ``sweeps * k * probe_len`` intervals of a round): the domains take turns, in a
   seeded random order, being *probed*: for ``probe_len`` intervals the mixture is the one-hot-smoothed
   ``one_hot * e_j + (1 - one_hot) / (k - 1)`` on the others. ``A`` is the least-squares solution of the
   observed loss changes ``d_t ≈ -A m_t`` (``m_t``: the mixture trained between the two loss measurements).
2. **Update**: ``p <- p * exp(eta * g / scale)``, normalised, with ``g_j = sum_i A[i, j]`` the total loss
   drop per interval on domain ``j``; then ``p`` is used for the rest of the round.

Deviations from the paper, all documented in ``docs/online.md``:

* Losses: held-out ``eval_loss`` when given (as in the paper); otherwise the mean *training* loss of each
  interval, which describes the model half-way through it, so the regressor is then the average of the
  mixtures of the two intervals (``m_t = (w_{t-1} + w_t) / 2``) rather than the probe mixture itself.
* The regression uses every interval after ``warmup`` (probes make ``A`` identifiable; the others add
  information along ``p``), with exponentially forgotten statistics (``forget`` per interval) and a small
  ridge, instead of one linear solve per round; this pools noise across rounds.
* ``scale`` makes ``eta`` unitless: the running maximum over rounds of ``mean_j |g_j - mean(g)|``. So the
  first clear signal moves ``log p`` by about ``eta``, and later steps shrink as the loss drops shrink, as
  the paper's update on raw ``A`` does, instead of every round moving by a fixed amount (a normalised step
  every interval drove an earlier version of this mixer to one-hot weights).
* ``smoothing`` (default 0.2; the paper has none) pulls ``p`` toward the prior after each step, which bounds
  how far noise can walk it.
"""

from __future__ import annotations

import numpy as np

from mixopt.online.base import Mixer, MixerError, observed_loss, register_mixer

__all__ = ["AioliMixer"]


@register_mixer("aioli")
class AioliMixer(Mixer):
    """Aioli: probe rounds estimate ``A``; one exponentiated-gradient step per round.

    Args:
        eta: step size of the exponentiated-gradient update (0.5; unitless, see the module docstring).
        one_hot: share of the probed domain during a probe, the rest spread evenly (``1/k + 0.25 (1 - 1/k)``
            when omitted: 0.44 for 4 domains, 0.34 for 8).
        sweeps: probe sweeps over all domains per round (1).
        probe_len: updates (intervals) each probe lasts (1).
        delta: fraction of each round spent probing (0.5): a round lasts ``ceil(sweeps * k * probe_len /
            delta)`` updates.
        warmup: first updates that keep the prior and are not fitted (2).
        forget: forgetting factor of the least-squares statistics per update (0.9).
        ridge: ridge penalty, relative to the mean diagonal of the design statistics (1e-3).
        smoothing: pull of ``p`` toward the prior after each step (0.2).
        min_share: per-domain floor of the weights in use (0).

    >>> import numpy as np
    >>> from mixopt.online import make_mixer
    >>> m = make_mixer("aioli", ["a", "b"], warmup=0, forget=1.0)
    >>> loss = np.array([3.0, 3.0])
    >>> for t in range(1, 13):          # training on a lowers both losses, b lowers nothing
    ...     loss = loss - np.array([[0.02, 0.0], [0.01, 0.0]]) @ m.weights
    ...     _ = m.update(t, loss * 100, [100, 100], eval_loss=loss)
    >>> bool(m.base_weights()[0] > 0.7)
    True
    """

    name = "aioli"

    def __init__(self, domains, initial_weights=None, seed=0, min_share=None, eta: float = 0.5,
                 one_hot: float | None = None, sweeps: int = 1, probe_len: int = 1, delta: float = 0.5,
                 warmup: int = 2, forget: float = 0.9, ridge: float = 1e-3, smoothing: float = 0.2):
        super().__init__(domains, initial_weights=initial_weights, seed=seed, min_share=min_share)
        k = self.k
        one_hot = 1.0 / k + 0.25 * (1.0 - 1.0 / k) if one_hot is None else float(one_hot)
        n_probe = int(sweeps) * k * int(probe_len)
        if (eta < 0 or not (k == 1 or 1.0 / k < one_hot <= 1) or sweeps < 1 or probe_len < 1
                or not 0 < delta < 1 or warmup < 0 or not 0 < forget <= 1 or ridge <= 0
                or not 0 <= smoothing <= 1):
            raise MixerError(
                f"aioli: need eta >= 0, 1/k < one_hot <= 1, sweeps, probe_len >= 1, 0 < delta < 1, "
                f"warmup >= 0, 0 < forget <= 1, ridge > 0, 0 <= smoothing <= 1; got eta={eta}, "
                f"one_hot={one_hot}, "
                f"sweeps={sweeps}, probe_len={probe_len}, delta={delta}, warmup={warmup}, forget={forget}, "
                f"ridge={ridge}, smoothing={smoothing}"
            )
        round_len = max(n_probe + 1, int(np.ceil(n_probe / delta)))
        self.eta, self.one_hot = float(eta), float(one_hot)
        self.sweeps, self.probe_len = int(sweeps), int(probe_len)
        self.delta, self.round_len, self.n_probe, self.warmup = float(delta), round_len, n_probe, int(warmup)
        self.forget, self.ridge, self.smoothing = float(forget), float(ridge), float(smoothing)
        self.trend = 2.0 / (n_probe + 1)  # rate of the trend averages: about one probe sweep
        self._state = {
            "p": self.prior.copy(),
            "sww": np.zeros((k, k)),
            "slw": np.zeros((k, k)),
            "sll": np.zeros(k),
            "trend_l": np.full(k, np.nan),
            "trend_w": np.full(k, np.nan),
            "n_eff": 0.0,
            "n_fit": 0,
            "prev_loss": np.full(k, np.nan),
            "prev_w": np.full(k, np.nan),
            "order": np.zeros(n_probe, dtype=np.int64),
            "scale": 0.0,
            "n_steps": 0,
        }

    def base_weights(self) -> np.ndarray:
        """``(k,)`` the mixture ``p`` used outside the probes."""
        return self._state["p"].copy()

    def interaction(self) -> np.ndarray | None:
        """``(k, k)`` current estimate of ``A`` (row: affected domain, column: trained domain), or None.

        Regressing on the mixture's *deviations* from its recent average identifies ``A`` only up to a
        constant per row (the drop any mixture gives); each row is returned centred, which is all the
        update uses (column sums compared across columns).
        """
        fit = self._fit()
        return None if fit is None else fit[0] - fit[0].mean(axis=1, keepdims=True)

    def _fit(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(A (k, k), inverse design (k, k) times the summed residual variance of the rows)`` or None."""
        st = self._state
        if st["n_fit"] < 2:
            return None
        sww = st["sww"]
        lam = self.ridge * max(np.trace(sww) / self.k, 1e-12)
        inv = np.linalg.inv(sww + lam * np.eye(self.k))
        a = -st["slw"] @ inv
        rss = np.maximum(st["sll"] - np.einsum("ij,jk,ik->i", st["slw"], inv, st["slw"]), 0.0)
        var = rss.sum() / max(float(st["n_eff"]) - self.k, 1.0)
        return a, var * inv

    def _probe(self, j: int) -> np.ndarray:
        w = np.full(self.k, (1.0 - self.one_hot) / max(self.k - 1, 1))
        w[j] = self.one_hot
        return w

    def _update(self, step, mean_loss, count, eval_loss):
        st = self._state
        loss = observed_loss(mean_loss, eval_loss)
        w_used = self._weights
        t = self.n_updates - self.warmup  # 1 = the first update after the warm-up
        if t <= 0:
            st["prev_loss"], st["prev_w"] = loss, w_used
            return self.prior
        prev = st["prev_loss"]
        if np.all(np.isfinite(loss)) and np.all(np.isfinite(prev)):
            m = w_used if eval_loss is not None else 0.5 * (w_used + st["prev_w"])
            d = loss - prev
            if np.all(np.isfinite(st["trend_l"])):
                # deviations from the recent trend: the loss drops shrink as training goes on, the probes
                # are what varies from one interval to the next
                dd, dm = d - st["trend_l"], m - st["trend_w"]
                st["sww"] = self.forget * st["sww"] + np.outer(dm, dm)
                st["slw"] = self.forget * st["slw"] + np.outer(dd, dm)
                st["sll"] = self.forget * st["sll"] + dd**2
                st["n_eff"] = self.forget * float(st["n_eff"]) + 1.0
                st["n_fit"] = int(st["n_fit"]) + 1
                st["trend_l"] = st["trend_l"] + self.trend * (d - st["trend_l"])
                st["trend_w"] = st["trend_w"] + self.trend * (m - st["trend_w"])
            else:
                st["trend_l"], st["trend_w"] = d, m
        st["prev_loss"] = np.where(np.isfinite(loss), loss, prev)
        st["prev_w"] = w_used
        pos = (t - 1) % self.round_len  # position in the round of the interval that starts now
        if pos == 0:  # a new round: draw this round's probe order
            st["order"] = np.concatenate([self._rng.permutation(self.k) for _ in range(self.sweeps)]
                                         ).repeat(self.probe_len)
        if pos == self.n_probe and st["n_fit"] >= self.k:  # LearnParams done: one exponentiated-gradient step
            self._step_p()
        if pos < self.n_probe:
            return self._probe(int(st["order"][pos]))
        return st["p"]

    def _step_p(self) -> None:
        st = self._state
        fit = self._fit()
        if fit is None:
            return
        a, cov = fit
        g = a.sum(axis=0)
        g = g - g.mean()
        # positive-part James-Stein factor of the centred gradient: ~0 when the differences between
        # domains are within the noise of the estimate, -> 1 when they are clear
        c = np.eye(self.k) - 1.0 / self.k
        noise = float(np.trace(c @ cov @ c))
        shrink = max(0.0, 1.0 - noise / max(float(g @ g), 1e-300))
        # unit: the total loss drop per interval under the recent mixtures (the trend), so eta is unitless
        # and the step does not depend on how far training has gone
        unit = abs(float(np.sum(st["trend_l"])))
        st["scale"] = unit
        if unit > 0:
            p = st["p"] * np.exp(self.eta * np.clip(shrink * g / unit, -1.0, 1.0))
            p = p / p.sum()
            st["p"] = (1.0 - self.smoothing) * p + self.smoothing * self.prior
            st["n_steps"] = int(st["n_steps"]) + 1
