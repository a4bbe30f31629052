"""Scale-out on the compose cluster: the same search with 1 and with 2 Ray workers (1 CPU each).

Run through ``bash scripts/cluster.sh scale [--runs N] [--tokens T]`` (it brings the cluster up, exports its
addresses and tears it down). A warm-up job prepares the demo data in the shared workspace first, so both
timed jobs only search. Per job: wall time from ``mixopt submit`` to SUCCEEDED, the proxies' own wall
times (start/end of each nested MLflow run), and the per-proxy overhead
``(wall x workers - sum of proxy seconds) / runs``: worker-slot seconds per proxy not spent training
(scheduling, surrogate fits between rounds, MLflow logging, idle slots). ``uptime`` load averages are
recorded before and after each job: this machine has 2 cores shared with other work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "service"))
from compose_cluster import ComposeCluster, tiny_job  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "cluster_scale.json"


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


def _run_job(c: ComposeCluster, work: Path, name: str, runs: int, tokens: int) -> dict:
    job_file = c.write_job(work / name, tiny_job(name, runs=runs, tokens=tokens))
    load0 = _load()
    t0 = time.monotonic()
    job_id = c.submit(job_file)
    follower = c.follow(job_id, work / f"{name}.log")
    follower.wait(timeout=3600)
    wall = time.monotonic() - t0
    status = c.status(job_id)
    if status != "SUCCEEDED":
        raise SystemExit(f"error: {job_id} ended {status}; log: {work / f'{name}.log'}")
    _, children = c.job_runs(name)
    proxy_s = [(int(ch["info"]["end_time"]) - int(ch["info"]["start_time"])) / 1000 for ch in children]
    return {"job": name, "job_id": job_id, "wall_s": round(wall, 1), "runs": len(children),
            "proxy_s_sum": round(sum(proxy_s), 1), "proxy_s_mean": round(sum(proxy_s) / max(1, len(proxy_s)), 2),
            "load_before": load0, "load_after": _load()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=60_000)
    args = ap.parse_args()
    c = ComposeCluster()
    work = Path(f"/tmp/mixopt-cluster-scale-{time.strftime('%Y%m%d-%H%M%S')}")
    stamp = time.strftime("%H%M%S")
    c.prepare_demo_data()
    c.scale_workers(1)
    warm = _run_job(c, work, f"scale-warm-{stamp}", 2, args.tokens)
    print(f"warm-up (data preparation + 2 runs): {warm['wall_s']} s", flush=True)
    rows = []
    for workers in (1, 2):
        c.scale_workers(workers)
        row = _run_job(c, work, f"scale-w{workers}-{stamp}", args.runs, args.tokens)
        row["workers"] = workers
        row["overhead_per_proxy_s"] = round((row["wall_s"] * workers - row["proxy_s_sum"]) / max(1, row["runs"]), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    ratio = rows[0]["wall_s"] / rows[1]["wall_s"]
    print("\n| workers | wall s | runs | sum proxy s | mean proxy s | overhead s/proxy | load before -> after |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['wall_s']} | {r['runs']} | {r['proxy_s_sum']} | {r['proxy_s_mean']} | "
              f"{r['overhead_per_proxy_s']} | {r['load_before']} -> {r['load_after']} |")
    print(f"\nwall(1 worker) / wall(2 workers) = {ratio:.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"warm": warm, "rows": rows, "speedup": round(ratio, 3), "args": vars(args)}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
