#!/usr/bin/env python3
"""Side-by-side table of `lcam bench --json` and the PyTorch bench scripts' --json lines.

Reads the two JSON-lines files (lcam's and PyTorch's; other lines are skipped), pairs records
by (arch, work, device, batch), and prints one Markdown table: ms per batch, images/s and
seconds per image on each side, lcam's speed over PyTorch's, peak memory on each side and
lcam's share of PyTorch's. Records without a partner get a row with the missing side blank.
lcam records timed as CUDA graph replays (`"graph": true`) get rows of their own, their work
marked "+graph", compared with the same (eager) PyTorch record; so do records with cuDNN's
fused convolutions switched off (`"conv_fusion": "off"`, marked "+nofusion"). Records in
bfloat16 (`"precision": "bf16"`: lcam's bf16 convolutions, PyTorch's autocast) are marked
"+bf16"; an lcam "+bf16" row is compared with PyTorch's "+bf16" record when there is one, else
with its float32 (TF32) record. lcam records with `"deterministic": true` (only deterministic
cuDNN algorithms, untimed choices) are marked "+det", compared with PyTorch's default record.
A second table judges the issue's goals (the training step at batch 64: at least 1.5x PyTorch's
images/s and at most half its peak memory; the L-CAM map at batch 1 and 64: at least 2x), on
lcam's eager record and on the better of it and its "+graph" record.

usage: bench_table.py LCAM.jsonl TORCH.jsonl [--out TABLE.md]
"""

import argparse
import json
import sys


def load(path):
    recs = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                work = (r.get("work", "forward") + ("+graph" if r.get("graph") else "")
                        + ("+nofusion" if r.get("conv_fusion") == "off" else "")
                        + ("+bf16" if r.get("precision") == "bf16" else "")
                        + ("+det" if r.get("deterministic") else ""))
                key = (r.get("arch"), work, r.get("device"), int(r.get("batch", 0)))
                recs[key] = r
    except OSError as e:
        print(f"bench_table: {path}: {e.strerror}", file=sys.stderr)
    return recs


def fmt(v, digits):
    return "" if v is None else f"{v:.{digits}f}"


# The goals, lcam against PyTorch at the same precision (TF32) and batch: speed ratios
# at least the goal, the memory ratio at most it. Each is judged on lcam's eager record, and on
# the best of its eager and CUDA-graph records (a graph replays the same work).
GOALS = [
    ("L-CAM-Img training step, images/s", "train-img", 64, "speed", 1.5),
    ("L-CAM-Img training step, peak memory", "train-img", 64, "memory", 0.5),
    ("L-CAM map latency, batch 1", "explain", 1, "speed", 2.0),
    ("L-CAM map throughput, batch 64", "explain", 64, "speed", 2.0),
]


def goals_table(ours, theirs):
    archs = sorted({k[0] for k in ours} | {k[0] for k in theirs}, key=str)
    devices = sorted({k[2] for k in ours} | {k[2] for k in theirs}, key=str)
    out = ["", "| goal | model | device | lcam record | ratio | goal | met |", "|---|---|---|---|---:|---:|---|"]
    for label, work, batch, kind, goal in GOALS:
        for arch in archs:
            for dev in devices:
                t = theirs.get((arch, work, dev, batch))
                cands = [(w, ours.get((arch, w, dev, batch))) for w in (work, work + "+graph")]
                cands = [(w, o) for w, o in cands if o]
                if not t or not cands:
                    if t or cands:
                        out.append(f"| {label} | {arch} | {dev} | {'(none)' if not cands else cands[0][0]} | | "
                                   f"{'>=' if kind == 'speed' else '<='} {goal} | no pair |")
                    continue
                def ratio(o):
                    if kind == "speed":
                        return t["median_ms"] / o["median_ms"] if o.get("median_ms") and t.get("median_ms") else None
                    return o["peak_mem_mb"] / t["peak_mem_mb"] if o.get("peak_mem_mb") is not None and t.get("peak_mem_mb") else None
                rated = [(w, r) for w, r in ((w, ratio(o)) for w, o in cands) if r is not None]
                if not rated:
                    continue
                shown = [rated[0]]
                best = max(rated, key=lambda x: x[1]) if kind == "speed" else min(rated, key=lambda x: x[1])
                if best[0] != rated[0][0]:
                    shown.append(best)
                for w, r in shown:
                    ok = r >= goal if kind == "speed" else r <= goal
                    out.append(f"| {label} | {arch} | {dev} | {w} | {r:.2f} | {'>=' if kind == 'speed' else '<='} "
                               f"{goal} | {'yes' if ok else 'no'} |")
    return "\n".join(out) + "\n" if len(out) > 3 else ""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("lcam")
    p.add_argument("torch")
    p.add_argument("--out")
    a = p.parse_args()
    ours, theirs = load(a.lcam), load(a.torch)
    order = {"forward": 0, "train-img": 1, "train-fm": 2, "train-img7x7": 3, "explain": 4, "gradcam": 5,
             "gradcampp": 6, "scorecam": 7, "rise": 8, "adic": 9}
    def base(k):  # the PyTorch partner of a "+graph" / "+nofusion" row: the record of the same work
        return (k[0], k[1].split("+")[0], k[2], k[3])

    def partner(k):  # PyTorch's record for an lcam row: bf16 with bf16 where PyTorch has it
        bf = (k[0], k[1].split("+")[0] + "+bf16", k[2], k[3])
        return theirs.get(bf) if "+bf16" in k[1] and bf in theirs else theirs.get(base(k))

    keys = sorted(set(ours) | set(theirs),
                  key=lambda k: (order.get(base(k)[1], 99), str(k[0]), str(k[2]), k[3], k[1]))
    rows = ["| model | work | device | batch | lcam ms/batch | lcam images/s | PyTorch ms/batch | PyTorch images/s "
            "| lcam / PyTorch speed | lcam peak MiB | PyTorch peak MiB | lcam / PyTorch memory |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k in keys:
        o, t = ours.get(k), partner(k)
        oms, tms = o and o.get("median_ms"), t and t.get("median_ms")
        omem, tmem = o and o.get("peak_mem_mb"), t and t.get("peak_mem_mb")
        speed = tms / oms if oms and tms else None
        mem = omem / tmem if omem is not None and tmem else None
        rows.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {fmt(oms, 2)} | {fmt(o and o.get('images_per_s'), 1)} "
                    f"| {fmt(tms, 2)} | {fmt(t and t.get('images_per_s'), 1)} | {fmt(speed, 2)} "
                    f"| {fmt(omem, 0)} | {fmt(tmem, 0)} | {fmt(mem, 2)} |")
    text = "\n".join(rows) + "\n" + goals_table(ours, theirs)
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(text)
        import os
        os.replace(a.out + ".tmp", a.out)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
