"""Weight trajectories to MLflow (metrics ``mixer/weight/<domain>``) and to a matplotlib plot.

The only MLflow-aware code of the online layer; mixers and trainer helpers never import MLflow.

>>> logger = MlflowWeightLogger(run_id, tracking_uri="sqlite:///mlflow.db")  # doctest: +SKIP
>>> mixing = OnlineMixing(mixer, sampler, update_every=20, tracker=logger)
>>> ...; logger.flush(); log_weight_plot(run_id, mixing.history, mixer.domains)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MlflowWeightLogger", "log_weight_plot", "plot_weights"]

METRIC_PREFIX = "mixer/weight/"


class MlflowWeightLogger:
    """A ``tracker(step, weights_dict)`` for :class:`~mixopt.online.OnlineMixing` that buffers the weights
    and sends them with ``MlflowClient.log_batch`` every ``flush_every`` updates (and on :meth:`flush`).

    Args:
        run_id: an existing MLflow run.
        tracking_uri: MLflow tracking URI (default: MLflow's current one).
        flush_every: updates per ``log_batch`` call.
    """

    def __init__(self, run_id: str, tracking_uri: str | None = None, flush_every: int = 10):
        from mlflow.tracking import MlflowClient

        self.run_id, self.flush_every = run_id, max(1, int(flush_every))
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self._buf: list = []

    def __call__(self, step: int, weights: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self._buf += [Metric(f"{METRIC_PREFIX}{d}", float(w), ts, int(step)) for d, w in weights.items()]
        if len(self._buf) >= self.flush_every * len(weights):
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics (MLflow takes at most 1000 per call)."""
        while self._buf:
            chunk, self._buf = self._buf[:1000], self._buf[1000:]
            self.client.log_batch(self.run_id, metrics=chunk)


def plot_weights(history: Sequence[tuple[int, Sequence[float]]], domains: Sequence[str], path: str | Path,
                 title: str = "mixture weights") -> Path:
    """Stacked-area plot of ``history`` (``[(step, weights (k,)), ...]``) saved as PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([s for s, _ in history])
    w = np.array([list(x) for _, x in history]).T  # (k, n)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.stackplot(steps, w, labels=list(domains), step="post")
    ax.set(xlabel="step", ylabel="weight", ylim=(0, 1), title=title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def log_weight_plot(run_id: str, history, domains, tracking_uri: str | None = None,
                    artifact_name: str = "mixer_weights.png") -> None:
    """Render :func:`plot_weights` and attach it to the MLflow run as an artifact."""
    import tempfile

    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        png = plot_weights(history, domains, Path(tmp) / artifact_name)
        MlflowClient(tracking_uri=tracking_uri).log_artifact(run_id, str(png))
