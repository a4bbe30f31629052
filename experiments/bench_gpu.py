"""Proxy throughput on a GPU: tokens/s and MFU of ``train_proxy`` (bf16, with and without torch.compile).

MFU = ``flops_per_token(seq_len) x tokens/s`` over the bf16 matmul peak of this GPU, measured in the same
run (a large ``torch.mm``, timed with CUDA events). Tokens/s is the steady state of what users get:
``train_proxy``'s own step clock minus its first step (which holds torch.compile and warm-up; printed
apart). Runs the GPU presets on the offline demo corpus (tokenizer vocabulary ``--vocab``).

    python experiments/bench_gpu.py --out experiments/out/gpu            # on a CUDA machine, ~3 minutes
    python experiments/bench_gpu.py --device cpu --smoke                  # exercises the script on a CPU

Run by ``experiments/gpu_check.sh``; nothing in CI depends on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_proxy import demo_data  # this folder is on sys.path when the script runs

from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy

# (preset, seq_len, batch_size, steps, compile)
GPU_CASES = [("dense-20m", 1024, 32, 60, True), ("dense-20m", 1024, 32, 30, False),
             ("moe-20m", 1024, 32, 60, True), ("dense-60m", 1024, 32, 40, True)]
SMOKE_CASES = [("dense-tiny", 64, 8, 4, False), ("moe-tiny", 64, 8, 4, False)]


def matmul_peak(device: str, n: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """FLOP/s of an n x n ``torch.mm`` in ``dtype`` (median over repeats)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for _ in range(repeats + 2):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times[2:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--smoke", action="store_true", help="tiny presets and few steps (to check the script)")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--out", default=None, help="folder for results.json")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"error: CUDA is not available to this torch ({torch.__version__}); "
              "install a CUDA build of torch, or pass --device cpu --smoke", file=sys.stderr)
        return 2
    dtype = "bf16" if args.device == "cuda" else "fp32"
    cases = SMOKE_CASES if args.smoke else GPU_CASES
    with tempfile.TemporaryDirectory() as tmp:
        data = demo_data(tmp, args.vocab)
        peak_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
        peak = matmul_peak(args.device, 8192 if args.device == "cuda" else 1024, peak_dtype)
        name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
        print(f"device {name}: {dtype} torch.mm peak {peak / 1e12:.1f} TFLOP/s; vocab {data.vocab_size}")
        rows = []
        for preset, seq_len, batch, steps, compile_ in cases:
            settings = TrainSettings(seq_len=seq_len, batch_size=batch, eval_points=1, eval_tokens=4 * seq_len,
                                     dtype=dtype, compile=compile_)
            cfg = ProxyConfig.preset(preset).with_vocab(data.vocab_size)
            r = train_proxy(cfg, data, data.prior(), tokens=steps * batch * seq_len, seed=0, settings=settings,
                            device=args.device, threads=1 if args.device == "cpu" else None)
            if not r.ok:
                print(f"{preset}: run failed: {r.reason}")
                rows.append({"preset": preset, "compile": compile_, "status": r.status, "reason": r.reason})
                continue
            first = r.extra["first_step_s"]
            train_s = r.extra["tokens_trained"] / r.tokens_per_s
            steady = (r.extra["tokens_trained"] - batch * seq_len) / max(1e-9, train_s - first)
            mfu = r.extra["flops_per_token"] * steady / peak
            rows.append({"preset": preset, "compile": compile_, "dtype": r.extra["dtype"], "seq_len": seq_len,
                         "batch": batch, "steps": steps, "first_step_s": first, "tokens_per_s": steady, "mfu": mfu,
                         "final_loss": sum(r.final_loss.values()) / len(r.final_loss),
                         "moe_impl": r.extra.get("moe_impl")})
            print(f"{preset:10s} compile={compile_!s:5s} {r.extra['dtype']} B={batch} T={seq_len}: "
                  f"{steady:12.0f} tok/s steady, MFU {mfu:.1%}, first step {first:.1f} s, "
                  f"mean final loss {rows[-1]['final_loss']:.3f}" + (f", experts {r.extra['moe_impl']}"
                                                                    if r.extra.get("moe_impl") else ""))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps({"device": name, "peak_flops": peak, "runs": rows},
                                                                indent=2))
    return 0 if all(r.get("status", "ok") == "ok" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
