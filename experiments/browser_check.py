"""Browser check: a tiny search submitted through the Ray Jobs API shows up in the MLflow UI.

Starts the loopback topology (token-protected Ray head + MLflow server, as subprocesses), submits a tiny
search over the demo corpus with ``mixopt.service.submit_search``, waits for it, then drives headless
Chromium (Debian's ``chromium`` package through Playwright — never ``playwright install``) to the job's
experiment, expands the parent run to show its nested proxy runs, and saves screenshots:

    experiments/screenshots/mlflow_landing.png          the experiment's landing page (must be the runs table)
    experiments/screenshots/mlflow_runs.png             runs table, parent expanded, nested runs visible
    experiments/screenshots/mlflow_compare.png          compare view of the nested runs (weights and losses)
    experiments/screenshots/mlflow_child_artifacts.png  one proxy run's artifacts (its loss-curve plot)

Usage (needs ``apt-get install -y chromium``; ~2-4 min on 2 cores):

    python experiments/browser_check.py [--out-dir experiments/screenshots] [--work DIR]

Exits non-zero, with the reason, if the job fails or the UI does not show the runs.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path

import yaml

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def tiny_job(work: Path) -> Path:
    """A 3-run BO search over the demo corpus (vocab 512, 20k tokens per proxy)."""
    from mixopt.data import build_demo_corpus

    corpus = work / "demo"
    sources = build_demo_corpus(corpus, seed=0)
    job = {
        "name": "browser-check",
        "workspace": str(work / "ws"),
        "seed": 0,
        "domains": {d: str(p) for d, p in sources.items()},
        "tokenizer": {"vocab_size": 512, "sample_bytes_per_domain": 100_000},
        "data": {"val_tokens": 2048},
        "proxy": {"preset": "dense-tiny", "tokens": 20_000, "seq_len": 64, "batch_size": 8,
                  "eval_points": 2, "eval_tokens": 1024},
        "search": {"strategy": "bo", "n_init": 2, "batch_size": 1, "candidates": 256},
        "budget": {"runs": 3},
    }  # fmt: skip
    path = work / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def screenshot_ui(uri: str, exp_id: str, parent_name: str, child_names: list[str], child_ids: list[str],
                  out_dir: Path, landing_url: str) -> list[str]:  # fmt: skip
    """Open the MLflow UI in headless Chromium; return the problems found (empty = all visible)."""
    from playwright.sync_api import TimeoutError as PWTimeout
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 760})
        page.set_default_timeout(120_000)
        # what a user lands on: the address `mixopt ui` prints (MLflow 3.17 ignores the experiment's kind
        # tag and opens the GenAI overview unless the address names the model-training view)
        page.goto(landing_url, wait_until="domcontentloaded")
        try:
            page.get_by_text(re.compile(r"^\d+ matching runs?$")).first.wait_for(timeout=60_000)
        except PWTimeout:
            problems.append("the experiment's landing page is not the runs table")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out_dir / "mlflow_landing.png"))
        page.goto(f"{uri}/#/experiments/{exp_id}/runs?workflowType=machine_learning", wait_until="domcontentloaded")
        page.get_by_text(re.compile(r"^\d+ matching runs?$")).first.wait_for()
        page.get_by_role("link", name=parent_name, exact=True).first.wait_for()
        close = page.get_by_role("button", name="Close")  # the "MLflow Assistant" side panel
        if close.count():
            close.first.click()
        # expand the parent: its nested runs are collapsed under a "+" button in the run-name cell
        page.locator('button[data-component-id*="runnamecellrenderer"]').first.click()
        for name in child_names:
            try:
                page.get_by_role("link", name=name, exact=True).first.wait_for(timeout=60_000)
            except PWTimeout:
                problems.append(f"nested run {name!r} not visible in the runs table")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out_dir / "mlflow_runs.png"))

        ids = ",".join(f'"{i}"' for i in child_ids)
        page.goto(f"{uri}/#/compare-runs?runs=[{ids}]&experiments=[\"{exp_id}\"]", wait_until="domcontentloaded")
        try:
            page.get_by_text(re.compile(r"^w\.\w+$")).first.wait_for(timeout=60_000)  # weights as params
            page.get_by_text(re.compile(r"^final_loss/\w+$")).first.wait_for(timeout=60_000)
        except PWTimeout:
            problems.append("compare view did not show the weights (w.*) and losses (final_loss/*)")
        details = page.get_by_text("Run details", exact=True)
        if details.count():  # scroll the per-run table (run ids, w.* params, losses) to the top
            details.first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out_dir / "mlflow_compare.png"))

        # one proxy run's artifacts: its per-domain loss curves
        page.goto(f"{uri}/#/experiments/{exp_id}/runs/{child_ids[0]}/artifacts", wait_until="domcontentloaded")
        try:
            page.get_by_text("loss_curves.png").first.wait_for(timeout=60_000)
            page.get_by_text("loss_curves.png").first.click()
        except PWTimeout:
            problems.append("a proxy run has no loss_curves.png artifact")
        page.wait_for_timeout(2000)
        page.screenshot(path=str(out_dir / "mlflow_child_artifacts.png"))
        browser.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(Path(__file__).parent / "screenshots"))
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2

    from mlflow.tracking import MlflowClient

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "service"))
    from loopback_servers import start_mlflow_server, start_ray_head  # the test harness, not the library

    from mixopt.commands.search import runs_table_url
    from mixopt.config import load_job_config
    from mixopt.service import stream_logs, submit_search, wait_for_job

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    work = Path(args.work or tempfile.mkdtemp(prefix="mixopt-browser-check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    os.environ["RAY_AUTH_TOKEN"] = token  # the submitter's side of token auth
    t0 = time.monotonic()
    job_file = tiny_job(work)
    mlflow_srv = start_mlflow_server(work / "mlflow", wait=False)
    head = start_ray_head(work / "ray", num_cpus=2, token=token, env={"OMP_NUM_THREADS": "1"}, wait=False)
    with mlflow_srv, head:
        head.wait_ready(180)
        mlflow_srv.wait_ready(180)
        print(f"topology up in {time.monotonic() - t0:.0f} s: Jobs API {head.uri}, MLflow {mlflow_srv.uri}")
        job_id = submit_search(job_file, address=head.uri, tracking_uri=mlflow_srv.uri)
        state = wait_for_job(head.uri, job_id, timeout_s=600, poll_s=2)
        print(f"job {job_id}: {state.status} after {time.monotonic() - t0:.0f} s")
        if state.status != "SUCCEEDED":
            stream_logs(head.uri, job_id, out=sys.stderr)
            return 1

        client = MlflowClient(tracking_uri=mlflow_srv.uri)
        exp = client.get_experiment_by_name("mixopt/browser-check")
        parent = client.search_runs([exp.experiment_id], filter_string="tags.`mixopt.role` = 'job'")[0]
        children = client.search_runs(
            [exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        )
        names = sorted(c.info.run_name for c in children)
        print(f"MLflow: experiment {exp.name!r}, parent run {parent.info.run_name!r}, nested runs {names}")
        out_dir = Path(args.out_dir)
        landing = runs_table_url(mlflow_srv.uri, load_job_config(job_file))  # what `mixopt ui` prints
        print(f"landing address (as `mixopt ui` prints it): {landing}")
        problems = screenshot_ui(
            mlflow_srv.uri, exp.experiment_id, parent.info.run_name, names,
            [c.info.run_id for c in children], out_dir, landing,
        )  # fmt: skip
    for name in ("mlflow_landing.png", "mlflow_runs.png", "mlflow_compare.png", "mlflow_child_artifacts.png"):
        p = out_dir / name
        if p.exists():
            print(f"screenshot: {p} ({p.stat().st_size / 1024:.0f} KiB)")
    print(f"total {time.monotonic() - t0:.0f} s")
    if problems:
        print("PROBLEMS:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"OK: the MLflow UI shows the parent run and its {len(names)} nested runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
