"""The transfer experiment's own settings (one YAML file), validated with pydantic like the job config.

The experiment config is *not* a :class:`mixopt.config.JobConfig`: it describes the whole study (two
model scales, the objectives, the strategies, the seeds) and the search jobs' ``JobConfig`` objects are
derived from it (see ``run.py:search_job_config``). Relative paths resolve against the YAML's folder.

>>> cfg = ExperimentConfig.model_validate({"name": "t"})
>>> cfg.seeds
[0, 1, 2]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mixopt.errors import ConfigError

__all__ = ["ExperimentConfig", "ModelSpec", "ObjectiveSpec", "load_experiment_config"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Model):
    """A model scale: a ``proxies`` preset, optionally with field overrides, trained for ``tokens`` tokens.

    With ``overrides`` the derived config gets ``name``, under which the experiment registers it as an extra
    preset in every process (the search trains proxies by preset name only).
    """

    preset: str = "dense-tiny"
    name: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict, description="ProxyConfig fields to replace")
    tokens: int = Field(gt=0, description="training tokens per run")
    lr: float | None = Field(default=None, gt=0, description="learning rate (default: train.lr)")

    @model_validator(mode="after")
    def _named(self) -> ModelSpec:
        if self.overrides and not self.name:
            raise ValueError("a model with overrides needs a 'name' (its preset name)")
        return self


class ObjectiveSpec(_Model):
    """A target objective: the weighted mean of per-domain validation losses (lower is better).

    Give ``domains`` (average over exactly these) or ``exclude`` (average over all the others).
    """

    domains: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_way(self) -> ObjectiveSpec:
        if self.domains is not None and self.exclude:
            raise ValueError("give 'domains' or 'exclude', not both")
        return self

    def weights(self, all_domains: list[str]) -> dict[str, float]:
        """``{domain: weight}`` summing to 1 (the form ``search.objective`` takes)."""
        chosen = self.domains if self.domains is not None else [d for d in all_domains if d not in self.exclude]
        unknown = sorted((set(chosen) | set(self.exclude)) - set(all_domains))
        if unknown:
            raise ConfigError(f"objective names unknown domain(s) {unknown}; domains are {all_domains}")
        if not chosen:
            raise ConfigError("objective averages over no domain")
        return {d: 1.0 / len(chosen) for d in chosen}


class TrainSpec(_Model):
    """Trainer settings shared by both scales (map 1:1 onto ``proxies.TrainSettings``)."""

    seq_len: int = Field(default=128, gt=1)
    batch_size: int = Field(default=16, gt=0)
    lr: float = Field(default=3e-3, gt=0)
    schedule: Literal["cosine", "wsd"] = "cosine"
    eval_points: int = Field(default=2, ge=1)
    eval_tokens: int = Field(default=8192, gt=0)


class SearchSpec(_Model):
    """The search jobs: one per (objective, strategy), all at the same proxy budget."""

    strategies: list[Literal["random", "regmix", "mixing_law", "bo"]] = ["random", "regmix", "mixing_law", "bo"]
    budget_tokens: int = Field(gt=0, description="proxy training tokens per search (equal for all strategies)")
    n_init: int = Field(default=6, gt=0)
    batch_size: int = Field(default=2, gt=0)
    candidates: int = Field(default=512, gt=0)
    parallel: int = Field(default=2, gt=0)
    seed: int | None = Field(
        default=None, ge=0,
        description="the search jobs' seed (default: the demo job's, 0); another seed gives other jobs and caches",
    )
    scored_floor: float | None = Field(
        default=None, ge=0, lt=1,
        description="the search jobs' constraints.scored_floor (default: the product's); when set, the job names "
                    "and caches carry it (-floor<x>), so runs with and without a floor sit side by side",
    )
    scored_floor_scope: Literal["search", "proposal"] | None = Field(
        default=None,
        description="the search jobs' constraints.scored_floor_scope (default: the product's); when set, the job "
                    "names and caches carry it (-scope<x>)",
    )
    confirm: bool | Literal["switch"] = Field(
        default=False,
        description="the search jobs' search.confirm (default: off, the product's); when set, the caches carry it "
                    "(__confirm<x>) but the job names do not: a finished search is resumed and only its "
                    "confirmation run is trained",
    )
    surrogates: dict[str, str] = Field(
        default_factory=dict,
        description="'strategy' or 'objective/strategy' -> search.surrogate overriding the strategy's own model "
                    "(default: none; each strategy proposes with its own model, as `mixopt search` does)",
    )
    bo_low_fidelity_fraction: float | None = Field(
        default=0.25, gt=0, lt=1, description="bo also runs proxies at this fraction of the tokens (multi-fidelity)"
    )


class OnlineSpec(_Model):
    mixer: str = "default"
    updates: int = Field(default=16, gt=0, description="mixer updates per run (spread evenly over the steps)")
    params: dict[str, Any] = Field(default_factory=dict)


class ExperimentConfig(_Model):
    name: str = "transfer"
    workspace: str = "../out/transfer"
    corpus_seed: int = 0
    vocab_size: int = Field(default=512, ge=260)
    seeds: list[int] = [0, 1, 2]
    workers: int = Field(default=2, gt=0, description="training runs in parallel (one thread each)")
    objectives: dict[str, ObjectiveSpec] = Field(default_factory=lambda: {"mean": ObjectiveSpec()})
    proxy: ModelSpec = ModelSpec(tokens=60_000)
    target: ModelSpec = ModelSpec(preset="dense-small", tokens=240_000)
    min_param_ratio: float = Field(default=8.0, gt=0)
    min_token_ratio: float = Field(default=4.0, gt=0)
    train: TrainSpec = TrainSpec()
    search: SearchSpec = SearchSpec(budget_tokens=600_000)
    online: OnlineSpec = OnlineSpec()


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    """Read and validate the experiment YAML; ``workspace`` is resolved against the file's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        cfg = ExperimentConfig.model_validate(raw)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "<top level>"
        raise ConfigError(f"{path}: {loc}: {first['msg']}") from None
    ws = Path(cfg.workspace).expanduser()
    cfg.workspace = str(ws if ws.is_absolute() else (path.resolve().parent / ws).resolve())
    return cfg
