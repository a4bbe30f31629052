"""Reference curves: the loss each domain should have reached after ``n`` training tokens.

A mixer given a reference rewards the domains that *lag* their curve (``loss - reference(n) > 0``). The
curves usually come from the proxy search (the loss its proposed mixture is predicted to reach) or from a
reference run. ``n`` is the **total** number of training tokens the mixer has observed (all domains
together; all ranks together when the sums are all-reduced), so a curve is a schedule in training time,
independent of how the mixer splits the tokens.

Accepted forms (:func:`load_reference`):

* ``{domain: (E, B, beta)}``: power laws ``L(n) = E + B * n ** -beta`` (``n`` in tokens), the primary
  form; e.g. fitted to a reference run's held-out curve with
  :func:`mixopt.online.power_law.fit_power_law` (``law.as_tokens()``).
* ``{domain: loss}``: a flat target (``B = 0``), the same as the older ``reference_loss=``.
* a search job's proposal (the path of its ``proposal.json``, the job directory, or the
  :class:`~mixopt.proposal.Proposal`):

  - its ``reference_curves`` (``{domain: [E, B, beta]}``, written by the search from its runs' eval curves,
    :func:`mixopt.curves.proposal_curves`): the proxies' curve for the proposed mixture, which ends after
    ``N_P`` tokens (``context.fidelity.tokens``) at the observed losses of a run of that mixture, else at
    the proposal's per-domain prediction. With
    ``reference_tokens`` ``N`` (this run's length, when it differs) the curve is stretched in time so
    that it ends after ``N`` tokens instead: ``L(n) = law(n * N_P / N)``;
  - else (a proposal from runs without eval curves) its ``predicted_targets`` (``{domain: loss}``) are
    taken as the loss each domain should have **at the end of training** (``reference_tokens``, else
    ``N_P``), and the curve before that follows a default shape
    ``L(n) = L_T + B (n^-beta0 - N_T^-beta0)`` with ``beta0 = 0.3``; ``B`` is set from the first loss the
    mixer observes for the domain, so every domain starts on its curve.

  Either way the targets are only as good as the proxy's transfer to the run at hand (a proxy searched at
  a much smaller scale predicts losses a larger model beats).

Domains missing from the reference have no target (their lag is 0: they are never rewarded for it).

>>> ref = load_reference({"code": (1.0, 10.0, 0.5), "web": 3.0}, ["code", "web", "noise"])
>>> ref.loss(100.0).tolist()
[2.0, 3.0, nan]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.online.base import MixerError

__all__ = ["DEFAULT_SHAPE", "ReferenceCurves", "load_reference"]

DEFAULT_SHAPE = 0.3  # beta0: the exponent of the default curve shape behind proposal.json targets


class ReferenceCurves:
    """``k`` curves ``L_k(n) = E_k + B_k * n ** -beta_k`` (NaN parameters: no target for that domain).

    ``anchor_tokens`` ``(k,)``: for a curve only known by its end point ``L_T`` at ``N_T`` tokens
    (``B`` NaN), ``N_T``; :meth:`calibrate` then sets ``B`` and ``E`` from the first observed loss.
    """

    def __init__(self, E: np.ndarray, B: np.ndarray, beta: np.ndarray,
                 anchor_tokens: np.ndarray | None = None):
        self.E, self.B, self.beta = (np.asarray(v, dtype=np.float64).copy() for v in (E, B, beta))
        k = len(self.E)
        self.anchor = np.full(k, np.nan) if anchor_tokens is None else np.asarray(anchor_tokens, float).copy()

    @property
    def k(self) -> int:
        return len(self.E)

    def loss(self, n: float) -> np.ndarray:
        """``(k,)`` reference loss after ``n`` total tokens (NaN: no target, or not calibrated yet)."""
        n = max(float(n), 1.0)
        return self.E + self.B * n**-self.beta

    def lag(self, loss: np.ndarray, n: float) -> np.ndarray:
        """``(k,)`` ``loss - reference(n)`` (nats; > 0 = behind the curve; 0 where there is no target)."""
        d = np.asarray(loss, dtype=np.float64) - self.loss(n)
        return np.where(np.isfinite(d), d, 0.0)

    def calibrate(self, loss: np.ndarray, n: float) -> None:
        """Fix end-point-only curves (``B`` NaN) so that they pass through ``loss`` at ``n`` tokens."""
        todo = np.isnan(self.B) & np.isfinite(self.anchor) & np.isfinite(loss)
        if not todo.any():
            return
        n = max(float(n), 1.0)
        span = n ** -self.beta[todo] - self.anchor[todo] ** -self.beta[todo]
        target = self.E[todo] + 0.0  # E holds L_T until calibrated
        b = np.where(span > 0, (loss[todo] - target) / np.where(span > 0, span, 1.0), 0.0)
        b = np.maximum(b, 0.0)
        self.B[todo] = b
        self.E[todo] = target - b * self.anchor[todo] ** -self.beta[todo]

    def state_dict(self) -> dict[str, list[float]]:
        return {"E": self.E.tolist(), "B": self.B.tolist(), "beta": self.beta.tolist(),
                "anchor": self.anchor.tolist()}

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        self.E, self.B, self.beta, self.anchor = (np.asarray(sd[key], dtype=np.float64).copy()
                                                  for key in ("E", "B", "beta", "anchor"))


def _domain_of(target: str, domains: Sequence[str]) -> str | None:
    """``"code"``, ``"loss/code"``, ``"val:code"`` -> ``"code"`` when ``code`` is a domain."""
    if target in domains:
        return target
    for sep in ("/", ":", "."):
        tail = target.rsplit(sep, 1)[-1]
        if tail in domains:
            return tail
    return None


def _from_curves(prop: dict, path: str, domains: list[str], total_tokens: float | None) -> ReferenceCurves:
    """A proposal's ``reference_curves``, stretched to end after ``total_tokens`` when given."""
    own = ((prop.get("context") or {}).get("fidelity") or {}).get("tokens")
    stretch = 1.0
    if total_tokens is not None and own:
        if float(total_tokens) <= 0:
            raise MixerError(f"reference_tokens must be > 0, got {total_tokens}")
        stretch = float(own) / float(total_tokens)
    k = len(domains)
    E, B, beta = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    for name, law in prop["reference_curves"].items():
        d = _domain_of(str(name), domains)
        if d is None:
            continue
        try:
            e, b, be = (float(x) for x in law)
        except (TypeError, ValueError):
            raise MixerError(f"reference: {path}: reference_curves[{name!r}] is not [E, B, beta]: {law!r}") from None
        if not all(np.isfinite([e, b, be])) or b < 0 or be < 0:
            raise MixerError(f"reference: {path}: reference_curves[{name!r}] needs finite E and B, beta >= 0, "
                             f"got {law!r}")
        i = domains.index(d)
        E[i], B[i], beta[i] = e, b * stretch**-be, be
    if np.isnan(E).all():
        raise MixerError(f"reference: none of the reference_curves {sorted(prop['reference_curves'])} of {path} "
                         f"names a domain of {domains}")
    return ReferenceCurves(E, B, beta)


def _from_proposal(prop: Any, path: str, domains: list[str], total_tokens: float | None) -> ReferenceCurves:
    if isinstance(prop, dict) and prop.get("reference_curves"):
        return _from_curves(prop, path, domains, total_tokens)
    targets = prop.get("predicted_targets") if isinstance(prop, dict) else None
    if not targets:
        raise MixerError(f"reference: {path} has no predicted_targets (the search's model did not "
                         "predict per-domain losses); pass reference as {domain: (E, B, beta)}")
    if total_tokens is None:
        total_tokens = ((prop.get("context") or {}).get("fidelity") or {}).get("tokens")
    if not total_tokens or float(total_tokens) <= 0:
        raise MixerError(f"reference: {path} does not say at how many tokens its targets hold; "
                         "pass reference_tokens=<tokens of this training run>")
    k = len(domains)
    E, B, beta, anchor = np.full(k, np.nan), np.full(k, np.nan), np.full(k, DEFAULT_SHAPE), np.full(k, np.nan)
    for name, value in targets.items():
        d = _domain_of(str(name), domains)
        if d is not None and value is not None and np.isfinite(float(value)):
            i = domains.index(d)
            E[i], anchor[i] = float(value), float(total_tokens)
    if np.isnan(E).all():
        raise MixerError(f"reference: none of the predicted_targets {sorted(targets)} of {path} "
                         f"names a domain of {domains}")
    return ReferenceCurves(E, B, beta, anchor)


def load_reference(reference: Any, domains: Sequence[str],
                   total_tokens: float | None = None) -> ReferenceCurves:
    """Reference curves for ``domains`` from a dict, a ``proposal.json`` path, a search job's directory or a
    :class:`~mixopt.proposal.Proposal` (see the module docstring).

    ``total_tokens``: the tokens at which a proposal's targets hold (its own fidelity when omitted).
    Raises :class:`MixerError` (one line) on anything malformed.
    """
    domains = list(domains)
    if isinstance(reference, ReferenceCurves):
        if reference.k != len(domains):
            raise MixerError(f"reference: {reference.k} curves for {len(domains)} domains")
        return reference
    if isinstance(reference, (str, Path)):
        path = Path(reference)
        if path.is_dir():  # a search job's directory
            path = path / "proposal.json"
        try:
            prop = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise MixerError(f"reference: cannot read proposal {str(path)!r}: {e}") from None
        return _from_proposal(prop, str(path), domains, total_tokens)
    if hasattr(reference, "to_dict") and hasattr(reference, "predicted_targets"):  # a Proposal
        return _from_proposal(reference.to_dict(), "the proposal", domains, total_tokens)
    if not isinstance(reference, Mapping) or not reference:
        raise MixerError("reference: expected {domain: (E, B, beta)}, {domain: loss} or a path to "
                         f"proposal.json, got {type(reference).__name__}")
    unknown = sorted(set(map(str, reference)) - set(domains))
    if unknown:
        raise MixerError(f"reference: unknown domain(s) {unknown}; domains are {domains}")
    k = len(domains)
    E, B, beta = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    for d, v in reference.items():
        i = domains.index(str(d))
        try:
            parts = [float(v)] if np.isscalar(v) else [float(x) for x in v]
        except (TypeError, ValueError):
            parts = []
        if len(parts) == 1:
            parts = [parts[0], 0.0, 0.0]
        if len(parts) != 3 or not all(np.isfinite(parts)) or parts[1] < 0 or parts[2] < 0:
            raise MixerError(f"reference[{d!r}]: expected a loss or (E, B, beta) with B, beta >= 0, "
                             f"got {v!r}")
        E[i], B[i], beta[i] = parts
    return ReferenceCurves(E, B, beta)
