"""Weight trajectories in a real MLflow (sqlite) store, batched, plus the end-of-run plot."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.online import OnlineMixing, make_mixer
from mixopt.online.tracking import MlflowWeightLogger, log_weight_plot, plot_weights


@pytest.mark.slow  # spawns processes / creates an MLflow sqlite store (~20-40 s on 2 busy cores)
def test_weights_logged_per_domain_and_plot_attached(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("online", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(exp).info.run_id

    doms = ["code", "noise"]
    logger = MlflowWeightLogger(run_id, tracking_uri=uri, flush_every=4)
    mixing = OnlineMixing(make_mixer("odm", doms), None, update_every=1, tracker=logger)
    for step in range(1, 11):
        mixing.observe(np.array([2.0, 5.0]), np.array([0, 1]), np.array([10, 10]))
        mixing.step(step)
    logger.flush()
    for i, d in enumerate(doms):
        hist = client.get_metric_history(run_id, f"mixer/weight/{d}")
        assert [m.step for m in hist] == list(range(1, 11))
        np.testing.assert_allclose([m.value for m in hist], [w[i] for _, w in mixing.history[1:]])
    assert hist[-1].value > 0.6  # ODM chased the high-loss domain, visibly in the metrics

    log_weight_plot(run_id, mixing.history, doms, tracking_uri=uri)
    assert [a.path for a in client.list_artifacts(run_id)] == ["mixer_weights.png"]
    png = plot_weights(mixing.history, doms, tmp_path / "w.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
