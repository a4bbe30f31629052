"""MLflow logging of the transfer experiment: one experiment (sqlite in the workspace), shared with the
search jobs (each search job logs its own parent run + one child per proxy into the same experiment).

This module adds a parent run ``transfer-summary`` (the experiment config, the summary statistics and the
result files) and one run per trained model (tag ``transfer.role=train``): params ``mixture``, ``scale``,
``seed``, ``w.<domain>``, model size, tokens; metrics ``final_loss/<domain>``, ``objective/<name>``,
``tokens_per_s``, ``wall_time``, and the validation curve ``val_loss/<domain>`` (step = tokens seen).
Logging is idempotent: a job whose ``transfer.job_key`` already has a run is not logged twice.
"""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["TransferTracker"]


class TransferTracker:
    def __init__(self, uri: str, experiment: str):
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(uri)
        self.client = MlflowClient(uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            art = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
            self.exp_id = self.client.create_experiment(experiment, artifact_location=art.as_uri())
        else:
            self.exp_id = exp.experiment_id
        self.logged = {
            r.data.tags.get("transfer.job_key")
            for r in self.client.search_runs([self.exp_id], "tags.`transfer.role` = 'train'", max_results=50_000)
        }

    def log_train(self, job: dict, rec: dict, mixture: str, kind: str, scale: str, objectives: dict) -> None:
        """One run per trained model (skipped when this job key was logged before)."""
        from mlflow.entities import Metric, Param
        from transfer_analysis import objective_value

        if job["key"] in self.logged:
            return
        tags = {"transfer.role": "train", "transfer.job_key": job["key"], "transfer.mixture": mixture,
                "transfer.kind": kind, "transfer.scale": scale, "status": str(rec.get("status")),
                "mlflow.runName": f"{scale}/{mixture}/s{job['seed']}"}
        run = self.client.create_run(self.exp_id, tags=tags)
        params = {"mixture": mixture, "scale": scale, "seed": job["seed"], "tokens": job["tokens"],
                  "online": bool(job.get("online")), "n_params": rec.get("n_params"),
                  "d_model": job["model"]["d_model"], "n_layers": job["model"]["n_layers"],
                  "n_experts": job["model"]["n_experts"]}
        params |= {f"w.{d}": f"{w:.5f}" for d, w in job["weights"].items()}
        metrics = []
        last = int((rec.get("tokens_seen") or [job["tokens"]])[-1])
        for d, v in (rec.get("final_loss") or {}).items():
            if v is not None and math.isfinite(v):
                metrics.append(Metric(f"final_loss/{d}", float(v), 0, last))
        for name, ow in objectives.items():
            v = objective_value(rec.get("final_loss") or {}, ow)
            if math.isfinite(v):
                metrics.append(Metric(f"objective/{name}", v, 0, last))
        for d, curve in (rec.get("val_loss") or {}).items():
            for t, v in zip(rec.get("tokens_seen") or [], curve, strict=False):
                if v is not None and math.isfinite(v):
                    metrics.append(Metric(f"val_loss/{d}", float(v), 0, int(t)))
        for key in ("tokens_per_s", "wall_time", "flops"):
            if rec.get(key) is not None:
                metrics.append(Metric(key, float(rec[key]), 0, last))
        traj = (rec.get("extra") or {}).get("weights_trajectory") or []
        for step, w in traj:
            for d, x in w.items():
                metrics.append(Metric(f"online_w/{d}", float(x), 0, int(step)))
        self.client.log_batch(run.info.run_id, metrics=metrics[:1000],
                              params=[Param(k, str(v)) for k, v in params.items()])
        self.client.set_terminated(run.info.run_id, "FINISHED" if rec.get("status") == "ok" else "FAILED")
        self.logged.add(job["key"])

    def prune(self, keep: set[str]) -> int:
        """Delete (soft) the training runs whose job key is not in ``keep`` (stale runs of changed settings)."""
        n = 0
        for r in self.client.search_runs([self.exp_id], "tags.`transfer.role` = 'train'", max_results=50_000):
            if r.data.tags.get("transfer.job_key") not in keep:
                self.client.delete_run(r.info.run_id)
                n += 1
        return n

    def log_summary(self, flat_params: dict, metrics: dict[str, float], files: list[Path]) -> str:
        """The experiment's summary run: config params, summary metrics and the result files."""
        import mlflow

        with mlflow.start_run(experiment_id=self.exp_id, run_name="transfer-summary",
                              tags={"transfer.role": "summary"}) as run:
            mlflow.log_params({k: str(v)[:500] for k, v in list(flat_params.items())[:100]})
            mlflow.log_metrics({k: v for k, v in metrics.items() if v is not None and math.isfinite(v)})
            for f in files:
                if f.exists():
                    mlflow.log_artifact(str(f))
            return run.info.run_id
