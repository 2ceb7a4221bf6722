#!/usr/bin/env python3
"""test_bench_table.py — tools/bench_table.py on made-up lcam and PyTorch records: rows paired by
model, work, device and batch (with the +graph / +nofusion / +bf16 / +det variants compared with
the right PyTorch record), and the goals table judged on the eager record and on the better of
it and its CUDA-graph record, with a pair missing reported as such.

usage: test_bench_table.py   (ctest runs it as the `bench_table` test)
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "..", "tools", "bench_table.py")


def rec(impl, work, batch, ms, mem, **kw):
    return dict(impl=impl, arch="vgg16", work=work, device="cuda", batch=batch, median_ms=ms,
                images_per_s=1000.0 * batch / ms, peak_mem_mb=mem, **kw)


def main():
    ours = [rec("lcam", "train-img", 64, 100.0, 1000), rec("lcam", "train-img", 64, 90.0, 1200, graph=True),
            rec("lcam", "train-img", 64, 120.0, 1000, deterministic=True),
            rec("lcam", "forward", 64, 50.0, 900, precision="bf16"), rec("lcam", "explain", 1, 2.0, 600)]
    theirs = [rec("torch", "train-img", 64, 140.0, 3000), rec("torch", "forward", 64, 80.0, 2000),
              rec("torch", "forward", 64, 60.0, 1500, precision="bf16"), rec("torch", "explain", 1, 3.0, 700),
              rec("torch", "explain", 64, 30.0, 2000)]
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, recs in (("lcam", ours), ("torch", theirs)):
            p = os.path.join(d, name + ".jsonl")
            with open(p, "w") as f:
                f.write("a line that is not JSON\n")
                for r in recs:
                    f.write(json.dumps(r) + "\n")
            paths.append(p)
        out = subprocess.run([sys.executable, TABLE, *paths], stdout=subprocess.PIPE, text=True, check=True).stdout
    lines = out.splitlines()
    failures = []

    def expect(fragment):
        if not any(fragment in line for line in lines):
            failures.append(f"no line with {fragment!r}")

    expect("| vgg16 | train-img | cuda | 64 | 100.00 | 640.0 | 140.00 | 457.1 | 1.40 | 1000 | 3000 | 0.33 |")
    expect("| vgg16 | train-img+graph | cuda | 64 | 90.00 | 711.1 | 140.00 | 457.1 | 1.56 |")
    expect("| vgg16 | train-img+det | cuda | 64 | 120.00 | 533.3 | 140.00 | 457.1 | 1.17 |")
    expect("| vgg16 | forward+bf16 | cuda | 64 | 50.00 | 1280.0 | 60.00 | 1066.7 | 1.20 |")  # bf16 with bf16
    expect("| L-CAM-Img training step, images/s | vgg16 | cuda | train-img | 1.40 | >= 1.5 | no |")
    expect("| L-CAM-Img training step, images/s | vgg16 | cuda | train-img+graph | 1.56 | >= 1.5 | yes |")
    expect("| L-CAM-Img training step, peak memory | vgg16 | cuda | train-img | 0.33 | <= 0.5 | yes |")
    expect("| L-CAM map latency, batch 1 | vgg16 | cuda | explain | 1.50 | >= 2.0 | no |")
    expect("| L-CAM map throughput, batch 64 | vgg16 | cuda | (none) | | >= 2.0 | no pair |")
    if failures:
        print(out)
        print("\n".join(failures))
        return 1
    print("bench_table: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
