"""The job configuration: one YAML file describes a whole mixture search.

The schema is a tree of pydantic models with ``extra="forbid"``, so an unknown key or a wrong type is a
one-line :class:`~mixopt.errors.ConfigError` naming the file and the dotted key::

    job.yaml: proxy.tokens: Input should be a valid integer (got 'lots')

Relative paths in the file (workspace, domain sources, tokenizer) are resolved against the directory of
the YAML file, so a job runs the same from any working directory.

>>> cfg = JobConfig.model_validate({"name": "demo", "domains": {"code": "corpus/code", "web": "corpus/web"}})
>>> cfg.search.strategy
'bo'

A domain entry may be a **group** of sub-domains (``{group: {prior, min_weight, max_weight}, domains: {...}}``,
nesting allowed); its leaves are named by path (``web/hq``) and ``cfg.domains`` lists the leaves, so the
data layer and proxies see a flat list of domains. :meth:`JobConfig.hierarchy` gives the groups:

>>> cfg = JobConfig.model_validate({"name": "demo", "domains": {
...     "web": {"group": {"max_weight": 0.6}, "domains": {"hq": "c/hq", "lq": "c/lq"}}, "code": "c/code"}})
>>> list(cfg.domains), cfg.hierarchy().names
(['web/hq', 'web/lq', 'code'], ['web'])
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mixopt.errors import ConfigError
from mixopt.hierarchy import SEP, Group, Hierarchy

__all__ = [
    "BudgetSettings",
    "ConstraintSettings",
    "DataSettings",
    "DomainSource",
    "EvalTask",
    "FidelitySettings",
    "GroupSettings",
    "JobConfig",
    "ProxySettings",
    "RaySettings",
    "ReuseSettings",
    "SearchSettings",
    "TokenizerSettings",
    "TrackingSettings",
    "load_job_config",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _checked_name(v: str) -> str:
    """A job or eval-task name: it becomes a folder and a metric path, so no path separators."""
    if not _NAME_RE.match(v):
        raise ValueError("must be 1-64 characters of letters, digits, '_', '-', '.' (no path separators)")
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DomainSource(_Model):
    """Where one domain's documents come from.

    Exactly one of ``path`` (a file, directory or glob of .jsonl/.json/.parquet/.txt/.md/.py files) or
    ``hf`` (a Hugging Face dataset name, loaded with ``datasets.load_dataset``) is given.

    format: how each matched file is read. ``auto`` (default) goes by extension (record files
    ``.jsonl/.json/.parquet``, known text extensions one document each, others rejected); ``text`` reads
    every matched file, whatever its extension (``.man``, none), as one UTF-8 document; ``jsonl``,
    ``json``, ``parquet`` read every file as that record format. exclude: glob patterns of files to drop,
    matched against the path relative to the source's folder (the directory, a glob's fixed leading
    folders, a file's parent) or, for an absolute pattern, against the absolute path; ``*`` also crosses
    folders (``fnmatch``).
    """

    path: str | None = None
    format: Literal["auto", "text", "jsonl", "json", "parquet"] = "auto"
    exclude: list[str] = Field(default_factory=list)
    hf: str | None = None
    hf_config: str | None = None
    split: str = "train"
    text_field: str = "text"
    max_documents: int | None = Field(default=None, gt=0)
    min_chars: int = Field(default=1, ge=0)

    def settings(self) -> dict[str, Any]:
        """The source's settings as JSON-able data, for hashes (``data_key``, source fingerprints);
        ``format`` and ``exclude`` appear only when set, so keys made before they existed still hold."""
        d = self.model_dump(mode="json")
        if d["format"] == "auto":
            del d["format"]
        if not d["exclude"]:
            del d["exclude"]
        return d

    @model_validator(mode="after")
    def _one_source(self) -> DomainSource:
        if (self.path is None) == (self.hf is None):
            raise ValueError("give exactly one of 'path' or 'hf'")
        if self.hf is not None and (self.format != "auto" or self.exclude):
            raise ValueError("'format' and 'exclude' apply to local files ('path'), not to 'hf' datasets")
        return self


class GroupSettings(_Model):
    """A group of domains (see :mod:`mixopt.hierarchy`): bounds on the sum of its leaves' weights and,
    optionally, its share of the natural mixture (``prior``; default: its leaves' token share)."""

    prior: float | None = Field(default=None, ge=0, le=1, description="share of the whole mixture")
    min_weight: float = Field(default=0.0, ge=0, le=1)
    max_weight: float = Field(default=1.0, ge=0, le=1)


def _is_group(entry: Any) -> bool:
    return isinstance(entry, dict) and ("domains" in entry or "group" in entry)


def _flatten_domains(entries: dict, prefix: str, where: str, flat: dict, groups: dict) -> None:
    """Nested group entries -> ``flat`` ``{"web/hq": source}`` and ``groups`` ``{"web": settings}``."""
    for name, entry in entries.items():
        full = f"{prefix}{SEP}{name}" if prefix else str(name)
        if not _is_group(entry):
            flat[full] = entry
            continue
        extra = sorted(set(entry) - {"group", "domains"})
        if extra:
            raise ValueError(f"{where}.{name}: unknown key(s) {extra} in a group (a group has 'group' and 'domains')")
        sub = entry.get("domains")
        if not isinstance(sub, dict) or not sub:
            raise ValueError(f"{where}.{name}.domains: a group needs a mapping of at least one domain")
        try:
            groups[full] = GroupSettings.model_validate(entry.get("group") or {}).model_dump()
        except ValidationError as e:
            bad = e.errors()[0]
            key = ".".join([f"{where}.{name}.group", *(str(p) for p in bad["loc"])])
            raise ValueError(f"{key}: {'unknown key' if bad['type'] == 'extra_forbidden' else bad['msg']}") from None
        _flatten_domains(sub, full, f"{where}.{name}.domains", flat, groups)


class EvalTask(_Model):
    """A downstream evaluation task scored on every proxy when its training ends (``mixopt.proxies.evals``).

    Either ``path`` (a jsonl of items) with ``kind`` (``multiple_choice``: ``{prompt, choices, answer}``;
    ``completion``: ``{prompt, completion}``), scored by the proxy's log-likelihood, or ``entry``
    (``"module:function"``, called as ``function(model, tokenizer) -> {metric: value}``; ``metrics`` may
    list the names it returns, so an objective naming them is checked when the job is loaded). Results are
    run-table targets named ``eval/<name>/<metric>``.
    """

    name: str
    path: str | None = None
    kind: Literal["multiple_choice", "completion"] | None = None
    entry: str | None = None
    metrics: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return _checked_name(v)

    @model_validator(mode="after")
    def _one_kind(self) -> EvalTask:
        if (self.path is None) == (self.entry is None):
            raise ValueError("give exactly one of 'path' (a jsonl of items) or 'entry' ('module:function')")
        if self.path is not None and (self.kind is None or self.metrics is not None):
            raise ValueError("a jsonl task needs 'kind' (multiple_choice or completion) and takes no 'metrics'")
        if self.entry is not None:
            module, sep, fn = self.entry.partition(":")
            if not (sep and module and fn) or self.kind is not None:
                raise ValueError(f"entry {self.entry!r}: expected 'module:function' (and no 'kind')")
        return self

    def metric_names(self) -> list[str] | None:
        """``eval/<name>/<metric>`` of every metric it records (None: an entry task with no ``metrics``)."""
        from mixopt.proxies.evals import METRICS

        names = METRICS[self.kind] if self.kind else self.metrics
        return None if names is None else [f"eval/{self.name}/{m}" for m in names]


class TokenizerSettings(_Model):
    """Train a byte-level BPE on a sample of every domain, or load an existing ``tokenizer.json``."""

    path: str | None = None
    vocab_size: int = Field(default=2048, ge=260, le=1_000_000)
    sample_bytes_per_domain: int = Field(default=2_000_000, gt=0)


class DataSettings(_Model):
    """Token shards and the mixture sampler."""

    val_tokens: int = Field(default=16_384, gt=0, description="held-out tokens per domain")
    max_epochs: float = Field(default=8.0, gt=0, description="sampler epoch cap per domain")
    on_epoch_cap: Literal["warn", "fail"] = "warn"


class FidelitySettings(_Model):
    """One proxy fidelity: a model preset trained for a number of tokens."""

    preset: str
    tokens: int = Field(gt=0)


class ProxySettings(_Model):
    """How each proxy run is trained (see ``proxies.TrainSettings`` for the trainer's own defaults)."""

    preset: str = "dense-tiny"
    tokens: int = Field(default=300_000, gt=0, description="training tokens per proxy run")
    seq_len: int = Field(default=128, gt=1)
    batch_size: int = Field(default=16, gt=0)
    lr: float = Field(default=3e-3, gt=0)
    schedule: Literal["cosine", "wsd"] = "cosine"
    eval_points: int = Field(default=6, ge=1, description="log-spaced evaluations of per-domain val loss")
    eval_tokens: int = Field(default=8_192, gt=0, description="val tokens per domain per evaluation")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    fidelities: list[FidelitySettings] | None = Field(
        default=None, description="cheap to expensive; the last is the target fidelity"
    )

    def fidelity_list(self) -> list[FidelitySettings]:
        """The fidelities to search over, cheapest first (just the main preset when none are given)."""
        return list(self.fidelities) if self.fidelities else [FidelitySettings(preset=self.preset, tokens=self.tokens)]


class SearchSettings(_Model):
    """How the search decides. ``strategy`` and ``surrogate`` are names from their registries
    (``mixopt.strategies.available_strategies()``, ``mixopt.surrogates.available_surrogates()``)."""

    strategy: str = "bo"
    n_init: int = Field(default=8, gt=0, description="initial design size")
    batch_size: int = Field(default=2, gt=0, description="proposals per round (q)")
    repeats: int = Field(
        default=1, gt=0, le=32, description="runs of each chosen mixture, each with its own seed, at the same "
        "fidelity; every repeat counts against the budget; with repeats > 1 the GP is fitted with per-mixture "
        "run-to-run noise (mixopt.noise)")
    surrogate: str | None = Field(default=None, description="model of the proposal (default: the strategy's own)")
    recommend: Literal["predicted", "revealed"] | None = Field(
        default=None, description="proposal rule (default: the strategy's own)")
    objective: str | dict[str, float] = "mean"
    max_retries: int = Field(default=2, ge=0)
    parallel: int | None = Field(default=None, gt=0, description="concurrent proxies (default: CPUs)")
    cpus_per_proxy: float = Field(default=1.0, gt=0)
    gpus_per_proxy: float = Field(default=0.0, ge=0)
    confirm: bool | Literal["switch"] = Field(
        default=False, description="train the proposal at the target fidelity at the end; 'switch': when that "
        "run does worse than the best observed run, that run becomes the proposal (mixopt.trust.confirmation_check)")
    verify_proposals: bool = Field(
        default=True, description="with budget left, run a low-trust proposal that was never run (see mixopt.trust)")
    candidates: int = Field(default=2048, gt=0, description="candidate mixtures per acquisition round")
    cost_unit: Literal["flops", "seconds"] = Field(
        default="flops", description="what a run costs to the multi-fidelity acquisition: the FLOPs it ran "
        "(default: choices independent of machine load, so the same seed gives the same mixtures) or its "
        "observed wall seconds (when FLOPs misprice the levels, e.g. on mixed hardware)")

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        from mixopt.strategies.registry import STRATEGIES

        if v not in STRATEGIES:
            raise ValueError(f"unknown strategy {v!r}; choose one of {', '.join(STRATEGIES.names())}")
        return v

    @field_validator("surrogate")
    @classmethod
    def _known_surrogate(cls, v: str | None) -> str | None:
        from mixopt.surrogates.registry import SURROGATES

        if v is not None and v not in SURROGATES:
            raise ValueError(f"unknown surrogate {v!r}; choose one of {', '.join(SURROGATES.names())}")
        return v


class BudgetSettings(_Model):
    """When the search stops: whichever limit is reached first (at least one must be set)."""

    runs: int | None = Field(default=24, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    flops: float | None = Field(default=None, gt=0)
    wall_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSettings:
        if all(v is None for v in (self.runs, self.tokens, self.flops, self.wall_seconds)):
            raise ValueError("set at least one of runs, tokens, flops, wall_seconds")
        return self


class ConstraintSettings(_Model):
    """Constraints on the proposed mixture."""

    min_weight: float | dict[str, float] = 0.0
    max_weight: float | dict[str, float] = 1.0
    max_epochs: float | None = Field(default=None, gt=0, description="repetition cap at target_tokens")
    target_tokens: int | None = Field(default=None, gt=0, description="tokens of the final (full) training run")
    kl_to_prior: float | None = Field(default=None, gt=0, description="max KL(proposal || prior), nats")
    scored_floor: float = Field(
        default=0.25, ge=0, lt=1,
        description="every domain the objective scores gets at least this fraction of an even share among the "
        "scored domains (0.25 of 1/5 = 0.05 for five), unless min_weight names it; cut to the domain's max weight "
        "and dropped when it does not fit; 0 turns it off. Small proxies cannot show what a larger model loses "
        "on a domain it barely sees (experiments/LOG.md)")
    scored_floor_scope: Literal["auto", "search", "proposal"] = Field(
        default="auto",
        description="where the scored floor applies: 'search' (the initial design, every candidate and the "
        "proposal) or 'proposal' (only the proposal and its verification run: the proxies explore the whole "
        "feasible set, as without a floor); 'auto': 'proposal' for search.strategy mixing_law, else 'search' "
        "(what measured best for each, experiments/LOG.md)")


class ReuseSettings(_Model):
    """Mixture reuse (see ``mixopt.search.reuse``): keep a previous job's proposal for the domains whose data
    did not change and search only the changed and new ones."""

    job: str = Field(description="the previous job: its job directory (holding job.json) or its job YAML file")
    mode: Literal["collapse", "freeze"] = Field(
        default="collapse", description="collapse: the unchanged domains become one virtual domain 'existing' at "
        "their previous proportions; freeze: they keep their previous absolute weights")


class TrackingSettings(_Model):
    uri: str | None = Field(default=None, description="MLflow URI (default: sqlite in the workspace)")
    experiment: str | None = None
    enabled: bool = True


class RaySettings(_Model):
    address: str | None = Field(default=None, description="existing cluster (default: embedded Ray)")
    num_cpus: int | None = Field(default=None, gt=0)
    object_store_memory: int = Field(default=200 * 1024**2, gt=0)


class JobConfig(_Model):
    """A mixture search job. See ``examples/quickstart.yaml`` for a complete example."""

    name: str
    workspace: str = "workspace"
    seed: int = 0
    domains: dict[str, DomainSource]
    groups: dict[str, GroupSettings] = Field(
        default_factory=dict, description="groups of domains, filled from nested `domains` entries")
    tokenizer: TokenizerSettings = TokenizerSettings()
    data: DataSettings = DataSettings()
    proxy: ProxySettings = ProxySettings()
    search: SearchSettings = SearchSettings()
    budget: BudgetSettings = BudgetSettings()
    constraints: ConstraintSettings = ConstraintSettings()
    tracking: TrackingSettings = TrackingSettings()
    ray: RaySettings = RaySettings()
    reuse: ReuseSettings | None = None
    evals: list[EvalTask] = Field(default_factory=list, description="downstream tasks scored on every proxy")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return _checked_name(v)

    @model_validator(mode="before")
    @classmethod
    def _nested_domains(cls, data: Any) -> Any:
        # a domain entry with `domains:` (and optionally `group:`) is a group: flatten it to path names
        if not isinstance(data, dict) or not isinstance(data.get("domains"), dict):
            return data
        if not any(_is_group(e) for e in data["domains"].values()):
            return data
        flat: dict[str, Any] = {}
        groups: dict[str, Any] = {}
        _flatten_domains(data["domains"], "", "domains", flat, groups)
        given = data.get("groups") or {}
        if isinstance(given, dict):
            twice = sorted(set(given) & set(groups))
            if twice:
                raise ValueError(f"group {twice[0]!r} is set both in `groups` and as a nested domain entry")
            groups = {**given, **groups}
        return {**data, "domains": flat, "groups": groups}

    @field_validator("domains", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        # `code: corpus/code` is shorthand for `code: {path: corpus/code}`.
        if isinstance(v, dict):
            return {k: ({"path": s} if isinstance(s, str) else s) for k, s in v.items()}
        return v

    @field_validator("domains")
    @classmethod
    def _domain_names(cls, v: dict[str, DomainSource]) -> dict[str, DomainSource]:
        if len(v) < 2:
            raise ValueError("need at least two domains to mix")
        for name in v:
            if len(name) > 200 or not all(_NAME_RE.match(part) for part in name.split(SEP)):
                raise ValueError(f"domain name {name!r} must be letters, digits, '_', '-', '.' "
                                 f"(in a group: one such name per level, joined by '{SEP}')")
        return v

    @field_validator("groups")
    @classmethod
    def _group_names(cls, v: dict[str, GroupSettings]) -> dict[str, GroupSettings]:
        for name in v:
            if len(name) > 200 or not all(_NAME_RE.match(part) for part in name.split(SEP)):
                raise ValueError(f"group name {name!r} must be letters, digits, '_', '-', '.'")
        return v

    @model_validator(mode="after")
    def _domain_references(self) -> JobConfig:
        from mixopt.errors import MixoptError, TableError
        from mixopt.feasible import Constraints
        from mixopt.objective import Objective

        names = set(self.domains)
        tasks = [t.name for t in self.evals]
        if len(set(tasks)) < len(tasks):
            raise ValueError(f"evals: task names must be unique, got {tasks}")
        targets = self.objective_targets()
        try:  # the objective weighs per-domain losses and the eval metrics it names
            Objective.parse(self.search.objective).weights(targets)
        except TableError as e:
            raise ValueError(f"search.objective: {e}") from None
        evals = {t.name: t for t in self.evals}
        for target in targets[len(self.domains):]:
            _, task, metric = (target.split("/", 2) + ["", ""])[:3]
            known = evals[task].metric_names() if task in evals else []
            if not metric or (known is not None and target not in known):
                listed = [m for t in self.evals for m in (t.metric_names() or [f"eval/{t.name}/<metric>"])]
                raise ValueError(f"search.objective names unknown eval metric {target!r}; the evals record "
                                 f"{listed or 'nothing (no evals: section)'}")
        refs = {"search.objective": self.search.objective}
        refs |= {"constraints.min_weight": self.constraints.min_weight, "constraints.max_weight": self.constraints.max_weight}
        for key, value in refs.items():
            if isinstance(value, dict):
                unknown = sorted(set(value) - names - set(targets))
                if unknown:
                    hint = (f" (group bounds go under the group: domains.{unknown[0]}.group)"
                            if unknown[0] in self.groups and key.startswith("constraints") else "")
                    raise ValueError(f"{key} names unknown domain(s) {unknown}; domains are {sorted(names)}{hint}")
        try:  # groups: declared, non-empty, consistent priors, bounds that the domains' min/max can meet
            h = self.hierarchy()
            h.check_priors()
            if not h.flat:
                c = self.constraints
                Constraints(min_weight=c.min_weight, max_weight=c.max_weight, groups=list(h.groups.values())
                            ).resolve(list(self.domains))
        except MixoptError as e:
            raise ValueError(f"domains: {e}") from None
        return self

    def hierarchy(self) -> Hierarchy:
        """The groups over the leaf domains (:class:`~mixopt.hierarchy.Hierarchy`; flat when there are none)."""
        return Hierarchy(list(self.domains), [Group(name, g.min_weight, g.max_weight, g.prior)
                                              for name, g in self.groups.items()])

    def scored_floors(self) -> dict[str, float]:
        """``{domain: floor}`` from ``constraints.scored_floor``: the domains whose loss the objective scores
        (nothing with fewer than two: one scored domain gets what the search finds best), except those
        ``constraints.min_weight`` names."""
        from mixopt.objective import Objective

        f = self.constraints.scored_floor
        scored = Objective.parse(self.search.objective).scored_domains(self.objective_targets(), list(self.domains))
        if f <= 0 or len(scored) < 2:
            return {}
        named = self.constraints.min_weight if isinstance(self.constraints.min_weight, dict) else {}
        return {d: f / len(scored) for d in scored if d not in named}

    def scored_floor_scope(self) -> str:
        """Where the scored floors apply, ``"search"`` or ``"proposal"`` (``constraints.scored_floor_scope``,
        ``"auto"`` resolved by the strategy: a mixing law fitted over the whole simplex, including mixtures
        that nearly leave a domain out, picked better proposals than one fitted inside the floors)."""
        scope = self.constraints.scored_floor_scope
        if scope == "auto":
            return "proposal" if self.search.strategy == "mixing_law" else "search"
        return scope

    def objective_targets(self) -> list[str]:
        """The run-table targets of the job: every domain's loss, then each eval metric
        (``eval/<task>/<metric>``) that ``search.objective`` names (``mean`` names none: it stays the mean
        of the domain losses)."""
        from mixopt.errors import TableError
        from mixopt.objective import Objective

        try:
            named = Objective.parse(self.search.objective).names
        except TableError as e:
            raise ValueError(f"search.objective: {e}") from None
        return list(self.domains) + [n for n in dict.fromkeys(named) if n.startswith("eval/") and n not in self.domains]

    # --- resolved locations -------------------------------------------------------------------------
    @property
    def workspace_dir(self) -> Path:
        return Path(self.workspace)

    @property
    def data_key(self) -> str:
        """A short hash of what the token shards depend on: the domains and their sources (in order), the
        tokenizer settings and ``data.val_tokens``. Jobs with the same key share their shards."""
        d = self.model_dump(mode="json")
        key = {"domains": [(n, s.settings()) for n, s in self.domains.items()], "tokenizer": d["tokenizer"],
               "val_tokens": d["data"]["val_tokens"]}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def data_dir(self) -> Path:
        """Token shards, tokenizer and manifest of this data configuration: ``<workspace>/data/<data_key>``,
        shared by the jobs of the workspace that have the same sources, tokenizer and split, and by no other."""
        return self.workspace_dir / "data" / self.data_key

    @property
    def job_dir(self) -> Path:
        """This job's state: run table, proposals, plots."""
        return self.workspace_dir / "jobs" / self.name

    def tracking_uri(self) -> str:
        return self.tracking.uri or f"sqlite:///{(self.workspace_dir / 'mlflow.db').resolve()}"

    def experiment_name(self) -> str:
        return self.tracking.experiment or f"mixopt/{self.name}"

    def to_flat_dict(self) -> dict[str, Any]:
        """Flat ``{"proxy.tokens": 300000, ...}`` view, for MLflow params."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            else:
                out[prefix] = value

        walk("", self.model_dump(mode="json"))
        return out


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<top level>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif "input" in first and not isinstance(first["input"], (dict, list)):
        msg = f"{msg} (got {first['input']!r})"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    if not first["loc"] and first["type"] == "value_error":  # a whole-job check names its own key
        return f"{source}: {msg.removeprefix('Value error, ')}{more}"
    return f"{source}: {loc}: {msg}{more}"


def _resolve(base: Path, p: str | None) -> str | None:
    if p is None or "://" in p:
        return p
    path = Path(p).expanduser()
    return str(path if path.is_absolute() else (base / path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate mapping keys (safe_load keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.YAMLError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_job_config(path: str | Path, overrides: dict[str, Any] | None = None) -> JobConfig:
    """Read, validate and resolve a job YAML file. Raises :class:`ConfigError` with a one-line message."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw.update(overrides or {})
    try:
        cfg = JobConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_error(str(path), e)) from None
    base = path.resolve().parent
    cfg.workspace = _resolve(base, cfg.workspace)
    for src in cfg.domains.values():
        src.path = _resolve(base, src.path)
    cfg.tokenizer.path = _resolve(base, cfg.tokenizer.path)
    if cfg.reuse is not None:
        cfg.reuse.job = _resolve(base, cfg.reuse.job)
    from mixopt.search.reuse import apply_reuse

    apply_reuse(cfg)  # a reusing job (this file, or `search --reuse` before): the previous job's tokenizer
    for task in cfg.evals:
        task.path = _resolve(base, task.path)
    return cfg
