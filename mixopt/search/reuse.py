"""Mixture reuse: when some domains change or new ones arrive, keep what a previous search decided for the
unchanged ones and search only the rest (OLMix's "mixture reuse").

A previous job (its job directory, or its job YAML) gave a proposal over its domains. Each domain of the
new job is compared with the previous job's data by its source hash (the content of its files and its
filter settings, as recorded in the previous data manifest):

- **kept**: same name, same source hash. Their previous weights are reused;
- **changed**: same name, different source hash; **new**: not in the previous job; **removed**: gone.

Two ways to reuse the kept domains (``reuse.mode``):

- ``collapse`` (default, OLMix's choice): the kept domains become one virtual domain ``existing`` whose
  internal proportions are the previous proposal's; the search decides how much ``existing`` gets against
  the changed and new domains. A search over ``1 + changed + new`` coordinates instead of every domain.
- ``freeze``: the kept domains keep their previous absolute weights; the changed and new domains share
  the rest. Only ``changed + new`` coordinates are searched.

The search works on these *coordinates* (the strategy, its surrogates and the feasible set see them);
every proxy trains on the full mixture over the real domains (:meth:`Reuse.expand`), ``runs.jsonl`` holds
full mixtures, and the proposal the user gets is the full mixture, with its coordinates in its context.

The previous job's tokenizer is reused (unless the new job names one), so the kept domains tokenize to the
same shards and ``prepare`` copies them instead of re-tokenising (matched by source and tokenizer hash).
Past proxy runs are not reused as observations: none of them was evaluated on the new or changed data.

>>> r = Reuse.from_parts("prev", "collapse", ["web", "code", "math"], {"web": 0.6, "code": 0.3, "old": 0.1},
...                      {"web": "h1", "code": "h2", "old": "h3"}, {"web": "h1", "code": "hX", "math": "h4"})
>>> r.coordinates, r.kept, r.changed, r.new, r.removed
(['existing', 'code', 'math'], ['web'], ['code'], ['math'], ['old'])
>>> r.expand([[0.5, 0.25, 0.25]]).tolist()
[[0.5, 0.25, 0.25]]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixopt.errors import ConfigError

__all__ = ["JOB_FILE", "Reuse", "VIRTUAL", "load_reuse", "write_job_file"]

JOB_FILE = "job.json"  # <job_dir>/job.json: the resolved config and data folder of a search (for --reuse)
VIRTUAL = "existing"


def write_job_file(cfg) -> None:
    """Record the resolved config and the data folder in ``<job_dir>/job.json`` (what ``--reuse`` reads)."""
    from mixopt.search.state import atomic_write_text

    cfg.job_dir.mkdir(parents=True, exist_ok=True)
    doc = {"config": cfg.model_dump(mode="json"), "data_dir": str(Path(cfg.data_dir).resolve())}
    atomic_write_text(cfg.job_dir / JOB_FILE, json.dumps(doc, indent=1))  # config order: domains keep theirs


@dataclass
class Reuse:
    """Which domains a search reuses from a previous one and how (see the module docstring).

    leaves: the new job's domains (config order); kept/changed/new: partition of ``leaves``; removed: the
    previous domains that are gone; ratios: ``(len(kept),)`` the previous proposal's weights on the kept
    domains, normalised to sum to 1 (collapse) or as they were (freeze); coordinates: what the search
    decides over.
    """

    source: str
    mode: str
    leaves: list[str]
    kept: list[str]
    changed: list[str]
    new: list[str]
    removed: list[str]
    ratios: np.ndarray
    previous: dict = field(default_factory=dict)
    tokenizer: str | None = None

    @classmethod
    def from_parts(cls, source: str, mode: str, leaves: Sequence[str], prev_weights: Mapping[str, float],
                   prev_hashes: Mapping[str, str], hashes: Mapping[str, str], *, previous: dict | None = None,
                   tokenizer: str | None = None) -> Reuse:
        """Classify ``leaves`` against the previous job's proposal weights and source hashes."""
        if mode not in ("collapse", "freeze"):
            raise ConfigError(f"reuse.mode: {mode!r} is not one of 'collapse', 'freeze'")
        leaves = list(leaves)
        if VIRTUAL in leaves and mode == "collapse":
            raise ConfigError(f"reuse: a domain is named {VIRTUAL!r}, the name of the collapsed domain; rename it")
        kept = [d for d in leaves if d in prev_hashes and prev_hashes[d] == hashes.get(d)
                and float(prev_weights.get(d, 0.0)) > 0]
        changed = [d for d in leaves if d in prev_hashes and d not in kept]
        new = [d for d in leaves if d not in prev_hashes]
        removed = [d for d in prev_weights if d not in leaves]
        if not kept:
            raise ConfigError(f"reuse: no domain is unchanged since {source} (same name, same data, weight > 0); "
                              "run a fresh search instead")
        if not changed and not new:
            raise ConfigError(f"reuse: no domain changed or was added since {source}; its proposal still applies")
        r = np.array([float(prev_weights[d]) for d in kept])
        if mode == "collapse":
            r = r / r.sum()
        elif r.sum() >= 1 - 1e-9:
            raise ConfigError("reuse.mode freeze: the kept domains already have all the weight; use collapse")
        return cls(str(source), mode, leaves, kept, changed, new, removed, r, dict(previous or {}), tokenizer)

    # --- the coordinates the search decides over ----------------------------------------------------
    @property
    def free(self) -> list[str]:
        """The changed and new domains, in config order."""
        return [d for d in self.leaves if d not in self.kept]

    @property
    def coordinates(self) -> list[str]:
        return ([VIRTUAL] if self.mode == "collapse" else []) + self.free

    def expand(self, Z) -> np.ndarray:
        """``(n, len(coordinates))`` points on the simplex -> ``(n, len(leaves))`` full mixtures."""
        Z = np.atleast_2d(np.asarray(Z, dtype=np.float64))
        W = np.zeros((Z.shape[0], len(self.leaves)))
        col = {d: i for i, d in enumerate(self.leaves)}
        kept_idx = [col[d] for d in self.kept]
        if self.mode == "collapse":
            W[:, kept_idx] = Z[:, :1] * self.ratios
            free_Z = Z[:, 1:]
        else:
            W[:, kept_idx] = self.ratios
            free_Z = Z * (1.0 - self.ratios.sum())
        W[:, [col[d] for d in self.free]] = free_Z
        return W

    def reduce(self, W) -> np.ndarray:
        """Full mixtures -> coordinates (the inverse of :meth:`expand` on its image)."""
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        col = {d: i for i, d in enumerate(self.leaves)}
        free = W[:, [col[d] for d in self.free]]
        if self.mode == "collapse":
            return np.column_stack([W[:, [col[d] for d in self.kept]].sum(axis=1), free])
        return free / (1.0 - self.ratios.sum())

    def expand_dict(self, weights: Mapping[str, float]) -> dict[str, float]:
        """A mixture keyed by coordinates -> keyed by domains (a full mixture is returned as it is)."""
        if set(weights) == set(self.leaves):
            return {d: float(weights[d]) for d in self.leaves}
        w = self.expand([[float(weights[c]) for c in self.coordinates]])[0]
        return {d: float(x) for d, x in zip(self.leaves, w, strict=True)}

    # --- the search space in coordinates ------------------------------------------------------------
    def prior(self, leaf_prior) -> np.ndarray:
        """The natural mixture in coordinates (kept domains' shares summed for collapse)."""
        p = np.asarray(leaf_prior, dtype=np.float64)
        col = {d: i for i, d in enumerate(self.leaves)}
        free = np.array([p[col[d]] for d in self.free])
        if self.mode == "collapse":
            return np.concatenate([[sum(p[col[d]] for d in self.kept)], free])
        return free / free.sum() if free.sum() > 0 else np.full(len(free), 1.0 / len(free))

    def bounds(self, lo, hi) -> tuple[dict[str, float], dict[str, float]]:
        """Per-domain bounds (``(k,)`` arrays over leaves, repetition caps included) -> bounds per coordinate.
        Collapse: ``existing`` may take ``s`` with ``lo_d <= s * ratio_d <= hi_d`` for every kept ``d``."""
        col = {d: i for i, d in enumerate(self.leaves)}
        lo_c, hi_c = {}, {}
        scale = 1.0 if self.mode == "collapse" else 1.0 - self.ratios.sum()
        for d in self.free:
            lo_c[d], hi_c[d] = min(1.0, lo[col[d]] / scale), min(1.0, hi[col[d]] / scale)
        if self.mode == "collapse":
            kl = np.array([lo[col[d]] for d in self.kept]) / self.ratios
            kh = np.array([hi[col[d]] for d in self.kept]) / self.ratios
            lo_c[VIRTUAL], hi_c[VIRTUAL] = float(min(1.0, kl.max())), float(min(1.0, kh.min()))
        else:
            bad = [d for d, r in zip(self.kept, self.ratios, strict=True)
                   if not lo[col[d]] - 1e-9 <= r <= hi[col[d]] + 1e-9]
            if bad:
                raise ConfigError(f"reuse.mode freeze: the previous weights of {bad} break this job's constraints")
        return lo_c, hi_c

    def describe(self) -> str:
        """One line for the progress display and the report."""
        parts = [f"kept {len(self.kept)} ({', '.join(self.kept)})"]
        for name, ds in (("changed", self.changed), ("new", self.new), ("removed", self.removed)):
            if ds:
                parts.append(f"{name} {', '.join(ds)}")
        how = (f"{len(self.kept)} kept domains collapsed into {VIRTUAL!r} at the previous proportions"
               if self.mode == "collapse" else f"kept domains frozen at {self.ratios.sum():.3f} of the mixture")
        return (f"reusing {self.source}: " + "; ".join(parts)
                + f"; {how}; searching {len(self.coordinates)} of {len(self.leaves)} coordinates")

    def to_dict(self) -> dict:
        return {"source": self.source, "mode": self.mode, "kept": self.kept, "changed": self.changed,
                "new": self.new, "removed": self.removed, "coordinates": self.coordinates,
                "ratios": {d: float(r) for d, r in zip(self.kept, self.ratios, strict=True)},
                "previous": self.previous}


def _previous_job(path: Path) -> tuple[Path, Path]:
    """(job dir, data dir) of a previous job given by its job directory or its job YAML file."""
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        from mixopt.config import load_job_config

        prev = load_job_config(path)
        return Path(prev.job_dir), Path(prev.data_dir)
    doc_path = path / JOB_FILE
    if not doc_path.is_file():
        raise ConfigError(f"reuse.job: {path} is neither a job YAML file nor a job directory with {JOB_FILE} "
                          "(a search writes it; give the previous job's YAML file instead)")
    try:
        doc = json.loads(doc_path.read_text())
        return path, Path(doc["data_dir"])
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"reuse.job: cannot read {doc_path} ({e})") from None


def load_reuse(cfg) -> Reuse | None:
    """The :class:`Reuse` of job ``cfg`` (``cfg.reuse``), or None. One-line ConfigError when the previous
    job has no proposal or data manifest, or when nothing can be reused."""
    if cfg.reuse is None:
        return None
    from mixopt.data.shards import read_manifest
    from mixopt.data.sources import source_fingerprint

    job_dir, data_dir = _previous_job(Path(cfg.reuse.job))
    try:
        proposal = json.loads((job_dir / "proposal.json").read_text())
    except (OSError, ValueError):
        raise ConfigError(f"reuse.job: {job_dir} has no proposal.json (finish that search first)") from None
    manifest = read_manifest(data_dir)
    if not manifest:
        raise ConfigError(f"reuse.job: no data manifest in {data_dir} (the previous job's data folder)")
    prev_hashes = {d: e.get("source_hash") for d, e in manifest.get("shards", {}).items()}
    # this job's source hashes: from its own manifest when the data is prepared (hashing a corpus is slow)
    mine = (read_manifest(cfg.data_dir) or {}).get("shards", {})
    hashes = {d: (mine.get(d) or {}).get("source_hash") or source_fingerprint(d, src) for d, src in cfg.domains.items()}
    tok = manifest.get("tokenizer", {}).get("path")
    tok_path = None
    if tok:
        tok_path = Path(tok) if Path(tok).is_absolute() else data_dir / tok
        tok_path = str(tok_path) if tok_path.is_file() else None
    runs = job_dir / "runs.jsonl"
    previous = {"job_dir": str(job_dir.resolve()), "predicted": proposal.get("predicted"),
                "n_runs": proposal.get("n_runs"), "flops": _flops(runs), "weights": proposal.get("weights", {})}
    return Reuse.from_parts(str(job_dir), cfg.reuse.mode, list(cfg.domains), proposal.get("weights", {}),
                            prev_hashes, hashes, previous=previous, tokenizer=tok_path)


def _flops(runs_file: Path) -> float | None:
    """Training FLOPs the previous search spent (its ok and failed runs, confirmations included)."""
    if not runs_file.is_file():
        return None
    from mixopt.search.state import read_runs

    return float(sum(r.flops for r in read_runs(runs_file)))


def apply_reuse(cfg) -> None:
    """Point a reusing job at the previous job's tokenizer (unless it names one), so that its unchanged
    domains tokenize exactly as before. A job started with ``search --reuse`` keeps its reuse settings:
    without ``cfg.reuse``, they are read from the job's own ``job.json``. Idempotent."""
    if cfg.reuse is None:
        try:
            saved = json.loads((cfg.job_dir / JOB_FILE).read_text())["config"]
        except (OSError, ValueError, KeyError):
            return
        if not saved.get("reuse"):
            return
        from mixopt.config import ReuseSettings

        cfg.reuse = ReuseSettings(**saved["reuse"])
        cfg.tokenizer.path = cfg.tokenizer.path or (saved.get("tokenizer") or {}).get("path")
    if cfg.tokenizer.path is not None:
        return
    from mixopt.data.shards import read_manifest

    _, data_dir = _previous_job(Path(cfg.reuse.job))
    tok = ((read_manifest(data_dir) or {}).get("tokenizer") or {}).get("path")
    if not tok:
        raise ConfigError(f"reuse.job: no data manifest with a tokenizer in {data_dir} (the previous job's data)")
    path = Path(tok) if Path(tok).is_absolute() else data_dir / tok
    if not path.is_file():
        raise ConfigError(f"reuse.job: the previous job's tokenizer {path} is missing")
    cfg.tokenizer.path = str(path.resolve())

