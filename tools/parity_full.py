#!/usr/bin/env python3
"""Full-size parity check of the `lcam` binary against torchvision (float32, CPU).

Steps: export a randomly initialized torchvision VGG-16 or ResNet-50 (default
init after torch.manual_seed(seed), BatchNorm randomized; see
export_torchvision.py) to WORKDIR, write K smooth random RGB PNG images
(upsampled low-resolution noise plus a little pixel noise, seeded), classify
them with torchvision using the standard eval transform (Resize(256),
CenterCrop(224), ToTensor, Normalize(ImageNet mean/std)), then run

  LCAM predict --arch A --weights W.h5 --topk 5 --json --all-logits IMG...

(W.pth instead with --format pth or pth-legacy: the state_dict as torch.save writes it, zip or
legacy format, read by lcam directly.)

and compare, per image: max |logit difference| / max |torch logit| <= --tol
(default 1e-3), and the ordered top-5 class lists equal (a reordering is
accepted, and reported, only where the torch logits of the swapped classes lie
within twice the measured logit error of each other: an exact near-tie). Prints one line per
image and a PASS/FAIL summary; exit status 0 on PASS, 1 on FAIL or when the
binary fails.

Omitted: real images and pretrained weights (unless --weights points at an
existing file), probability checks, GPU runs of the torch reference (the
binary itself may be run on any device with --device), and timing.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import PIL
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torchvision as et  # noqa: E402

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def eval_transform():
    return transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(mean=MEAN, std=STD),
    ])


def parse_size(text):
    if "x" in text:
        w, h = text.lower().split("x", 1)
        return int(w), int(h)
    return int(text), int(text)


def make_image(rng, size):
    """Smooth random RGB image: bicubic-upsampled coarse noise plus faint pixel noise."""
    w, h = size
    cw, ch = rng.randint(3, 17), rng.randint(3, 17)
    coarse = rng.randint(0, 256, size=(ch, cw, 3)).astype(np.uint8)
    img = Image.fromarray(coarse, "RGB").resize((w, h), Image.BICUBIC)
    arr = np.asarray(img).astype(np.float32) + rng.normal(0.0, 4.0, size=(h, w, 3))
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def write_images(workdir, count, seed, size):
    rng = np.random.RandomState(seed)
    paths = []
    for i in range(count):
        path = os.path.join(workdir, f"img_{i:03d}.png")
        make_image(rng, size).save(path)
        paths.append(path)
    return paths


def torch_logits(model, paths):
    tf = eval_transform()
    batch = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return model(batch).double()


def run_lcam(args, weights, paths):
    cmd = [args.lcam, "predict", "--arch", args.arch, "--weights", weights,
           "--topk", "5", "--json", "--all-logits"]
    if args.device:
        cmd += ["--device", args.device]
    # The resize of the Pillow that torchvision runs here (13 orders its passes otherwise).
    cmd += ["--pillow", "13" if int(PIL.__version__.split(".")[0]) >= 13 else "12"]
    cmd += paths
    print("running:", " ".join(cmd[:9]) + f" ... ({len(paths)} images)", flush=True)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=args.timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"could not run {args.lcam}: {e}")
    if proc.returncode != 0:
        raise RuntimeError(f"{args.lcam} exited with status {proc.returncode}:\n{proc.stderr.strip()}")
    results = {}
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise RuntimeError(f"bad JSON line from lcam: {line[:200]!r} ({e})")
        if "image" in obj:
            results[os.path.realpath(obj["image"])] = obj
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lcam", required=True, help="path to the lcam binary")
    p.add_argument("--arch", required=True, choices=et.ARCHS)
    p.add_argument("--seed", type=int, default=0, help="seed for weights and images (default 0)")
    p.add_argument("--images", type=int, default=4, help="number of random images (default 4)")
    p.add_argument("--workdir", required=True, help="directory for the weights file and images")
    p.add_argument("--weights", help="use this existing weights file (.h5, or a torch.save .pth) instead of "
                   "exporting random ones")
    p.add_argument("--format", choices=("h5", "pth", "pth-legacy"), default="h5",
                   help="random weights written as lcam's HDF5 or as torch.save's zip / legacy file (default h5)")
    p.add_argument("--image-size", default="256", help="image size, N or WxH (default 256)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="passed to lcam predict --device")
    p.add_argument("--tol", type=float, default=1e-3, help="max |dlogit| / max |logit| (default 1e-3)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed for the lcam run")
    args = p.parse_args(argv)
    if args.images < 1:
        p.error("--images must be positive")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    os.makedirs(args.workdir, exist_ok=True)
    if args.weights:
        weights = args.weights
    elif args.format == "h5":
        weights = os.path.join(args.workdir, f"{args.arch}-random-seed{args.seed}.weights.h5")
        et.write_weights(et.random_model(args.arch, args.seed), weights)
        print(f"exported random {args.arch} (seed {args.seed}) to {weights}")
    else:
        legacy = args.format == "pth-legacy"
        weights = os.path.join(args.workdir, f"{args.arch}-random-seed{args.seed}{'.legacy' if legacy else ''}.pth")
        torch.save(et.random_model(args.arch, args.seed).state_dict(), weights,
                   _use_new_zipfile_serialization=not legacy)
        print(f"saved random {args.arch} (seed {args.seed}) with torch.save to {weights}")
    # The reference reads back the very file lcam reads.
    if weights.endswith(".pth"):
        model = et.load_state_dict_file(args.arch, weights).eval()
    else:
        model = et.model_from_weights(weights)
    if et.arch_of(model) != args.arch:
        print(f"FAIL: {weights} holds {et.arch_of(model)}, not {args.arch}")
        return 1

    paths = [os.path.abspath(x) for x in
             write_images(args.workdir, args.images, args.seed, parse_size(args.image_size))]
    ref = torch_logits(model, paths)

    try:
        got = run_lcam(args, weights, paths)
    except RuntimeError as e:
        print(f"FAIL: {e}")
        return 1

    failures = 0
    worst = 0.0
    for i, path in enumerate(paths):
        name = os.path.basename(path)
        t = ref[i]
        t_top = t.topk(5).indices.tolist()
        obj = got.get(os.path.realpath(path))
        if obj is None:
            print(f"{name}: FAIL no output line from lcam")
            failures += 1
            continue
        problems = []
        logits = obj.get("logits")
        rel = float("nan")
        l = None
        if not isinstance(logits, list) or len(logits) != t.numel():
            problems.append(f"'logits' missing or of length {len(logits) if isinstance(logits, list) else None}"
                            f" (expected {t.numel()})")
        else:
            l = torch.tensor(logits, dtype=torch.float64)
            rel = ((l - t).abs().max() / t.abs().max()).item()
            worst = max(worst, rel)
            if not rel <= args.tol:
                problems.append(f"logit error {rel:.2e} > {args.tol:.0e}")
        try:
            l_top = [int(e["class"]) for e in obj.get("top", [])]
        except (TypeError, KeyError, ValueError):
            l_top = None
        note = ""
        if l_top != t_top:
            # A reordering is accepted only as an exact near-tie: every swapped pair's torch
            # logits lie within twice the measured logit error, which alone can explain it.
            abs_err = (l - t).abs().max().item() if l is not None else float("inf")
            if l_top and len(l_top) == 5:
                gaps = [abs(t[a] - t[b]).item() for a, b in zip(l_top, t_top) if a != b]
            else:
                gaps = [float("inf")]
            if l is not None and max(gaps) <= 2 * abs_err and not problems:
                note = f" (top-5 order differs within a near-tie: torch {t_top} lcam {l_top})"
            else:
                problems.append(f"top-5 differs: torch {t_top} lcam {l_top} (largest torch-logit gap "
                                f"between swapped classes {max(gaps) / t.abs().max().item():.1e} relative)")
        status = ("ok" + note) if not problems else "FAIL " + "; ".join(problems)
        print(f"{name}: max|dlogit|/max|logit| {rel:.2e}, top-5 {t_top}, max|logit| "
              f"{t.abs().max().item():.4g}: {status}")
        failures += bool(problems)

    verdict = "PASS" if failures == 0 else "FAIL"
    print(f"{verdict}: {args.arch}, seed {args.seed}, {len(paths) - failures}/{len(paths)} images agree, "
          f"worst relative logit error {worst:.2e} (tolerance {args.tol:.0e})")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
