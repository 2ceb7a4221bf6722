#!/usr/bin/env python3
"""test_kernel_summary.py — tools/kernel_summary.py on a made-up Nsight Compute raw page: kernels
summed by name and ranked by time, the units row skipped, times in base units (ns) shown in us,
the tail folded into one row, names with '|' escaped, and a file without the expected header
refused with exit status 2.

usage: test_kernel_summary.py   (ctest runs it as the `kernel_summary` test)
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "tools", "kernel_summary.py")

RAW = '''==PROF== Disconnected
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","gpu__time_duration.sum"
"","","","","","","","ns"
"0","1","lcam","h","sm90_xmma_fprop_implicit_gemm_tf32","1","7","1,000"
"1","1","lcam","h","relu_mask_kernel","1","7","250"
"2","1","lcam","h","sm90_xmma_fprop_implicit_gemm_tf32","1","7","3,000"
"3","1","lcam","h","a|b","1","7","500"
"4","1","lcam","h","tiny","1","7","250"
'''


def run(args, stdin=None):
    return subprocess.run([sys.executable, TOOL] + args, input=stdin, capture_output=True, text=True)


def main():
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    r = run(["--top", "3"], RAW)
    check(r.returncode == 0, f"exit status {r.returncode}: {r.stderr}")
    lines = r.stdout.splitlines()
    check(lines and lines[0] == "5 kernels, 4 distinct, 0.005 ms of device time", f"header line: {lines[:1]}")
    body = [l for l in lines if l.startswith("| ") and not l.startswith("| kernel")]
    check(len(body) == 4, f"3 kernels and a tail row: {body}")
    if len(body) == 4:
        check(body[0] == "| sm90_xmma_fprop_implicit_gemm_tf32 | 2 | 4.0 | 2.0 | 80.0% |", f"first row: {body[0]}")
        check(body[1] == "| a\\|b | 1 | 0.5 | 0.5 | 10.0% |", f"second row (escaped name): {body[1]}")
        check(body[2].startswith("| relu_mask_kernel | 1 | 0.2"), f"third row (first of the ties): {body[2]}")
        check(body[3].startswith("| (1 more) | 1 | 0.2"), f"tail row: {body[3]}")
    r = run(["--width", "10"], RAW)
    check("| sm90_xm... | 2 |" in r.stdout, f"names cut to the width: {r.stdout}")
    with tempfile.TemporaryDirectory() as d:
        bad = os.path.join(d, "bad.csv")
        with open(bad, "w") as f:
            f.write('"ID","Kernel Name"\n"0","k"\n')
        r = run([bad])
        check(r.returncode == 2 and "no header" in r.stderr and r.stderr.count("\n") == 1,
              f"no metric column: exit {r.returncode}, {r.stderr!r}")
        r = run([os.path.join(d, "missing.csv")])
        check(r.returncode == 2 and "missing.csv" in r.stderr, f"missing file: exit {r.returncode}, {r.stderr!r}")
    for f in failures:
        print("FAIL", f)
    print("kernel_summary:", "ok" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
