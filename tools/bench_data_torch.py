#!/usr/bin/env python3
"""bench_data_torch.py — the reference for `lcam bench-data`: the same evaluation input pipeline
with PIL + torchvision, Image.open(path).convert("RGB"), Resize(256), CenterCrop(224), ToTensor(),
over every image of a directory or list, in one process and with N worker processes
(multiprocessing.Pool, images handed out four at a time); images/s and ms/image per worker count
(median over repetitions) and a per-stage split in one process, as the same JSON fields.

Deliberately omits: Normalize (lcam normalizes on the device, so neither side times it), sending
the tensors back from the workers (a DataLoader would; lcam's threads write into their own
buffers, so both sides only produce the tensor), and any GPU work.

Needs Pillow, torch and torchvision (e.g. /usr/bin/python3 on the development machine):
    /usr/bin/python3 tools/bench_data_torch.py --data ../shared/data/imagenet-sample --workers 1,2
"""
import argparse  # command line
import io  # decoding from bytes for the stage split
import json  # --json output
import multiprocessing  # the worker pool
import os  # listing --data
import statistics  # median over repetitions
import time  # perf_counter

import torch  # single-threaded ToTensor
import torchvision.transforms as T  # Resize, CenterCrop, ToTensor
from PIL import Image  # decoding

_TRANSFORM = None


def _init_worker(resize, crop):
    """Per process: one torch thread (as lcam's one thread per image) and the transform."""
    global _TRANSFORM
    torch.set_num_threads(1)
    _TRANSFORM = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor()])


def _one(path):
    t = _TRANSFORM(Image.open(path).convert("RGB"))
    return t.shape[0]


def image_paths(data, list_file):
    if list_file:
        paths = []
        with open(list_file) as f:
            for line in f:
                words = line.split()
                if words and not words[0].startswith("#"):
                    paths.append(os.path.join(data, words[0]))
        return paths
    return sorted(os.path.join(data, n) for n in os.listdir(data)
                  if os.path.isfile(os.path.join(data, n)))


def time_pass(paths, pool):
    t0 = time.perf_counter()
    if pool is None:
        for p in paths:
            _one(p)
    else:
        for _ in pool.imap_unordered(_one, paths, chunksize=4):
            pass
    return time.perf_counter() - t0


def stages(paths, resize, crop):
    """Seconds per stage over all images in this process."""
    r, c, tt = T.Resize(resize), T.CenterCrop(crop), T.ToTensor()
    s = {"read": 0.0, "decode": 0.0, "resize": 0.0, "crop_to_float": 0.0}
    for p in paths:
        t0 = time.perf_counter()
        with open(p, "rb") as f:
            b = f.read()
        t1 = time.perf_counter()
        im = Image.open(io.BytesIO(b)).convert("RGB")
        t2 = time.perf_counter()
        im = r(im)
        t3 = time.perf_counter()
        tt(c(im))
        t4 = time.perf_counter()
        s["read"] += t1 - t0
        s["decode"] += t2 - t1
        s["resize"] += t3 - t2
        s["crop_to_float"] += t4 - t3
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="directory of images")
    ap.add_argument("--list", default="", help="`PATH [LABEL]` lines, PATH relative to --data")
    ap.add_argument("--workers", default="1,2",
                    help="comma-separated worker counts; 1 = this process, no pool")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    paths = image_paths(args.data, args.list)
    n = len(paths)
    _init_worker(args.resize, args.crop)
    time_pass(paths, None)  # warm-up
    if not args.json:
        print(f"PIL {Image.__version__} + torchvision: {n} images from {args.data}, "
              f"Resize({args.resize}) + CenterCrop({args.crop}) + ToTensor, "
              f"median of {args.reps} repetitions, {os.cpu_count()} CPUs")
    for w in counts:
        pool = None
        if w > 1:
            pool = multiprocessing.Pool(w, initializer=_init_worker,
                                        initargs=(args.resize, args.crop))
            time_pass(paths, pool)  # warm the workers
        secs = [time_pass(paths, pool) for _ in range(args.reps)]
        if pool is not None:
            pool.close()
            pool.join()
        med = statistics.median(secs)
        ips = n / med
        if args.json:
            print(json.dumps({"impl": "pil+torchvision", "mode": "processes", "threads": w,
                              "images": n, "reps": args.reps, "median_s": med,
                              "images_per_s": ips, "images_per_s_per_worker": ips / w,
                              "ms_per_image": 1000.0 * med / n}), flush=True)
        else:
            print(f"workers {w:3d}: {ips:9.1f} images/s  {1000.0 * med / n:7.3f} ms/image  "
                  f"({ips / w:.1f} images/s per worker)", flush=True)
    total = {"read": 0.0, "decode": 0.0, "resize": 0.0, "crop_to_float": 0.0}
    for _ in range(args.reps):
        for k, v in stages(paths, args.resize, args.crop).items():
            total[k] += v
    ms = {k: 1000.0 * v / (n * args.reps) for k, v in total.items()}
    if args.json:
        print(json.dumps({"impl": "pil+torchvision", "mode": "stages", "threads": 1, "images": n,
                          "reps": args.reps, "stages_ms": ms}))
    else:
        print("stages, 1 process, ms/image: " +
              "  ".join(f"{k.replace('crop_to_float', 'crop+to_tensor')} {v:.3f}"
                        for k, v in ms.items()) + f"  (sum {sum(ms.values()):.3f})")


if __name__ == "__main__":
    main()
