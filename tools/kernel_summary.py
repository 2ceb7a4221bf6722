#!/usr/bin/env python3
"""kernel_summary.py — the kernels of an Nsight Compute report, summed by name: a Markdown
table of calls, total and mean device time and share, the longest first. Input: the raw page
as CSV (`ncu --import R.ncu-rep --csv --page raw --print-units base`), on a file or stdin;
the report was taken with `--metrics gpu__time_duration.sum` (tools/gpu-check.sh takes the
timed calls of `lcam bench` alone, through their NVTX range "bench timed").

usage: kernel_summary.py [CSV] [--top N] [--width W]
"""
import argparse
import csv
import sys

METRIC = "gpu__time_duration.sum"


def summarize(lines, top, width):
    rows = list(csv.reader(lines))
    head = next((i for i, r in enumerate(rows) if "Kernel Name" in r and METRIC in r), None)
    if head is None:
        return None
    name_at, time_at = rows[head].index("Kernel Name"), rows[head].index(METRIC)
    unit = "ns"
    by_name = {}
    order = []
    for r in rows[head + 1:]:
        if len(r) <= max(name_at, time_at):
            continue
        value = r[time_at].replace(",", "").strip()
        try:
            t = float(value)
        except ValueError:  # the units row (base units: "ns" or "nsecond"), or a blank
            if value:
                unit = value
            continue
        name = r[name_at]
        if name not in by_name:
            by_name[name] = [0, 0.0]
            order.append(name)
        by_name[name][0] += 1
        by_name[name][1] += t
    scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}.get(unit, 1e-3)
    total = sum(v[1] for v in by_name.values()) * scale
    ranked = sorted(order, key=lambda n: -by_name[n][1])
    out = [f"{sum(v[0] for v in by_name.values())} kernels, {len(by_name)} distinct, {total / 1e3:.3f} ms of device time",
           "", "| kernel | calls | total us | mean us | share |", "|---|---:|---:|---:|---:|"]
    for n in ranked[:top]:
        calls, t = by_name[n]
        t *= scale
        shown = n if len(n) <= width else n[:width - 3] + "..."
        shown = shown.replace("|", "\\|")
        out.append(f"| {shown} | {calls} | {t:.1f} | {t / calls:.1f} | {100 * t / total if total else 0:.1f}% |")
    if len(ranked) > top:
        rest = sum(by_name[n][1] for n in ranked[top:]) * scale
        out.append(f"| ({len(ranked) - top} more) | {sum(by_name[n][0] for n in ranked[top:])} | {rest:.1f} | | "
                   f"{100 * rest / total if total else 0:.1f}% |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="?", help="the raw page as CSV (default: stdin)")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--width", type=int, default=110, help="kernel names cut to this many characters")
    a = ap.parse_args()
    try:
        lines = open(a.csv, newline="").read().splitlines() if a.csv else sys.stdin.read().splitlines()
    except OSError as e:
        print(f"kernel_summary: {a.csv}: {e.strerror}", file=sys.stderr)
        return 2
    text = summarize(lines, a.top, a.width)
    if text is None:
        print(f"kernel_summary: {a.csv or 'stdin'}: no header with 'Kernel Name' and {METRIC} "
              "(expected ncu --import R --csv --page raw)", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
