#!/usr/bin/env python3
"""PyTorch side of the inference benchmark (the reference `lcam bench` is compared to).

Times torchvision VGG-16 / ResNet-50 forward passes with random weights
(torchvision's default init), eval mode, torch.no_grad, 224x224 inputs.
CPU: wall time with time.perf_counter; CUDA: CUDA events. Reports the median
milliseconds per batch and images/s; peak memory is
torch.cuda.max_memory_allocated on CUDA (weights + activations, i.e. what the
caching allocator handed out, not what it reserved) and, on CPU, the rise of
the process's peak RSS (getrusage ru_maxrss) over the level reached after the
model and input were created. On CPU each batch size runs in its own child
process so these peaks do not mask one another.

Output: one human-readable line per configuration; with --json, that line goes
to stderr and stdout carries one JSON object per line: {"impl": "pytorch", "arch", "device", "batch", "threads",
"median_ms", "images_per_s", "peak_mem_mb", ...}.

Omitted: channels-last layouts, AMP/half precision, torch.compile/TorchScript,
cudnn.benchmark autotuning unless --cudnn-benchmark is given, and the
backward pass.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torchvision

from torch_tf32 import set_tf32, tf32_state  # tools/torch_tf32.py, beside this script

ARCHS = ("vgg16", "resnet50")


def build(arch):
    torch.manual_seed(0)
    fn = torchvision.models.vgg16 if arch == "vgg16" else torchvision.models.resnet50
    return fn(weights=None).eval()


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def bench_one(args, batch):
    dev = torch.device(args.device)
    model = build(args.arch).to(dev)
    x = torch.randn(batch, 3, 224, 224, device=dev)
    times = []
    with torch.no_grad():
        if dev.type == "cuda":
            torch.cuda.synchronize()
            for _ in range(args.warmup):
                model(x)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()  # the steady state's peak, as lcam bench
            for _ in range(args.iters):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                model(x)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            base = maxrss_mb()
            for _ in range(args.warmup):
                model(x)
            for _ in range(args.iters):
                t0 = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t0) * 1e3)
            peak = maxrss_mb() - base
    median = statistics.median(times)
    rec = {
        "impl": "pytorch",
        "arch": args.arch,
        "device": args.device,
        "batch": batch,
        "threads": args.threads,
        "median_ms": round(median, 4),
        "images_per_s": round(batch * 1e3 / median, 3),
        "peak_mem_mb": round(peak, 1),
        "iters": args.iters,
        "warmup": args.warmup,
        "torch": torch.__version__,
    }
    if dev.type == "cuda":
        rec.update(tf32_state())
        rec["gpu"] = torch.cuda.get_device_name(dev)
    return rec


def human(rec):
    mem = "peak alloc" if rec["device"] == "cuda" else "peak RSS rise"
    extra = ""
    if rec["device"] == "cuda":
        extra = f", tf32 conv={rec.get('tf32_conv')} matmul={rec.get('tf32_matmul')}"
    return (f"pytorch {rec['arch']} {rec['device']} batch {rec['batch']} threads {rec['threads']}: "
            f"median {rec['median_ms']:.2f} ms/batch, {rec['images_per_s']:.1f} images/s, "
            f"{mem} {rec['peak_mem_mb']:.0f} MiB{extra}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("--batch", default="1,32", help="comma-separated batch sizes (default 1,32)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--tf32", choices=("on", "off"), default=None,
                   help="cudnn/cuBLAS TF32 math (default: PyTorch's own defaults)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    p.add_argument("--json", action="store_true", help="also print one JSON object per configuration")
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # child-process mode
    args = p.parse_args(argv)

    try:
        batches = [int(b) for b in args.batch.split(",") if b.strip()]
    except ValueError:
        p.error(f"--batch: expected comma-separated integers, got {args.batch!r}")
    if not batches or min(batches) < 1 or args.iters < 1 or args.warmup < 0 or args.threads < 1:
        p.error("batch sizes, --iters and --threads must be positive, --warmup non-negative")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2

    if args.device == "cpu" and len(batches) > 1 and not args.single:
        # One child process per batch size keeps the CPU peak-RSS numbers independent.
        rc = 0
        for b in batches:
            cmd = [sys.executable, os.path.abspath(__file__), "--single", "--arch", args.arch,
                   "--batch", str(b), "--threads", str(args.threads), "--device", "cpu",
                   "--iters", str(args.iters), "--warmup", str(args.warmup)]
            if args.json:
                cmd.append("--json")
            rc = subprocess.call(cmd) or rc
        return rc

    torch.set_num_threads(args.threads)
    if args.tf32 is not None:
        set_tf32(args.tf32 == "on")
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True

    for b in batches:
        rec = bench_one(args, b)
        # With --json, stdout carries only JSON lines; the human line goes to stderr.
        print(human(rec), file=sys.stderr if args.json else sys.stdout, flush=True)
        if args.json:
            print(json.dumps(rec), flush=True)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
