#!/usr/bin/env python3
"""PyTorch side of `lcam bench --work W`: the same work on the same shapes, for comparison.

Works (each on a batch of random [0,1] images with one class per image, classes (37 n) mod 1000;
several comma-separated --arch and --work values run in turn in one process):
  forward: the logits of the normalized batch (no grad).
  train-img, train-fm, train-img7x7: an L-CAM training step. The frozen backbone's features of
    the normalized image (no grad), the attention's 1x1 convolution (all 1000 maps, then each
    image's own label map, as the official code does), sigmoid, and then for img/img7x7:
    bilinear upsampling to the image, masking of the [0,1] image, normalization and the whole
    frozen network with gradients flowing back to the attention; for fm: the mask on the feature
    maps and the head. Loss 1.5 CE + 2 area + 0.01 TV, backward, SGD (Nesterov, weight decay).
  explain: L-CAM's saliency maps: features (no grad), the class's 1x1-convolution row, min-max
    per map, bilinear upsampling to the image.
  gradcam, gradcampp: Grad-CAM (the class logit) and Grad-CAM++ (its softmax probability, the
    comparison's reference variant) on the last conv block, maps min-maxed and upsampled.
  scorecam: per image, the C upsampled activation maps divided by their range, each multiplying
    the normalized image, `--chunk` per forward pass; weights are the class's probabilities.
  rise: per image, `--rise-masks` masks times the normalized image, `--chunk` per forward pass;
    the map is the probability-weighted sum of the masks, min-maxed.
  adic: the unmasked class probabilities, then for 100/50/15% kept the top pixels of a given map
    (a stable sort per map, the lowest zeroed) times the image, and their probabilities.
Random weights (torchvision's init): speed does not depend on their values. CPU: perf_counter;
CUDA: events. Reports the median ms per batch, images/s, seconds per image and peak memory
(CUDA: max_memory_allocated; CPU: peak RSS rise). `--amp bf16` runs each call under
torch.autocast with bfloat16 (PyTorch's mixed precision: convolutions and matrix products in
bf16, the partner of `lcam bench --precision bf16`); records then say "precision": "bf16".
cuDNN's benchmark mode is on by default (`--cudnn-benchmark`): PyTorch then times its
convolution algorithms per shape, as lcam does, and is compared at its fastest.
Omits data loading and torch.compile.
"""

import contextlib

import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as Fn
import torchvision

from torch_tf32 import set_tf32, tf32_state  # tools/torch_tf32.py, beside this script

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def tv(m):
    d1 = ((m[:, :, 1:, :] - m[:, :, :-1, :]) ** 2).sum()
    d2 = ((m[:, :, :, 1:] - m[:, :, :, :-1]) ** 2).sum()
    b = (m[:, :, 0, :] ** 2).sum() + (m[:, :, -1, :] ** 2).sum() + (m[:, :, :, 0] ** 2).sum() + (m[:, :, :, -1] ** 2).sum()
    return (d1 + d2 + 0.3 * b) / (2 * m.shape[0])


WORKS = ("forward", "train-img", "train-fm", "train-img7x7", "explain", "gradcam", "gradcampp", "scorecam", "rise", "adic")


def minmax(m):
    """Per map of [N,1,H,W]: (m - min) / (max - min), zeros for a constant map."""
    f = m.flatten(1)
    lo, hi = f.min(1, keepdim=True).values, f.max(1, keepdim=True).values
    r = hi - lo
    return torch.where(r > 0, (f - lo) / torch.where(r > 0, r, torch.ones_like(r)), torch.zeros_like(f)).view_as(m)


def make_work(a, net, dev):
    """The closure that does one batch of work `a.work`."""
    mean, std = MEAN.to(dev), STD.to(dev)
    S = a.size
    x01 = torch.rand(a.batch, 3, S, S, device=dev)
    labels = (torch.arange(a.batch, device=dev) * 37) % 1000
    rows = torch.arange(a.batch, device=dev)
    if a.arch == "vgg16":
        cut = 31 if a.work == "train-img7x7" else 30
        features, C = net.features[:cut], 512

        def head(f):
            return net.classifier(torch.flatten(net.avgpool(net.features[cut:](f)), 1))
    else:
        features, C = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4), 2048

        def head(f):
            return net.fc(torch.flatten(net.avgpool(f), 1))

    def up(m):
        return Fn.interpolate(m, size=(S, S), mode="bilinear", align_corners=False)

    def norm(x):
        return (x - mean) / std

    def probs(x):  # softmax probability of each image's class
        return torch.softmax(net(x), 1)[rows[: x.shape[0]], labels[: x.shape[0]]]

    if a.work == "forward":
        @torch.no_grad()
        def step():
            return net(norm(x01))
        return step

    if a.work.startswith("train-"):
        attn = torch.nn.Conv2d(C, 1000, 1).to(dev)
        opt = torch.optim.SGD([{"params": [attn.weight], "lr": 1e-3}, {"params": [attn.bias], "lr": 1e-3}],
                              momentum=0.9, nesterov=True, weight_decay=5e-4)

        def step():
            with torch.no_grad():
                F = features(norm(x01))
            c = attn(F)
            m = torch.sigmoid(c[rows, labels].unsqueeze(1))
            logits = head(F * m) if a.work == "train-fm" else net(norm(x01 * up(m)))
            loss = 1.5 * Fn.cross_entropy(logits, labels) + 2 * ((m + 5e-4) ** 0.3).mean() + 0.01 * tv(m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    if a.work == "explain":
        W, b = torch.randn(1000, C, device=dev) * C ** -0.5, torch.zeros(1000, device=dev)

        @torch.no_grad()
        def step():
            F = features(norm(x01))
            c = torch.einsum("nc,nchw->nhw", W[labels], F).unsqueeze(1) + b[labels].view(-1, 1, 1, 1)
            return up(minmax(c))
        return step

    if a.work in ("gradcam", "gradcampp"):
        def step():
            with torch.no_grad():
                A = features(norm(x01))
            A.requires_grad_(True)
            logits = head(A)
            if a.work == "gradcam":
                g, = torch.autograd.grad(logits[rows, labels].sum(), A)
                w = g.mean((2, 3))
            else:
                S_c = torch.softmax(logits, 1)[rows, labels]
                g, = torch.autograd.grad(S_c.sum(), A)
                with torch.no_grad():
                    g2, g3 = g * g, g * g * g
                    D = 2 * g2 + (A * g3).sum((2, 3), keepdim=True)
                    D = torch.where(D != 0, D, torch.ones_like(D))
                    alpha = g2 / (D + 1e-7)
                    w = (alpha * torch.relu(torch.exp(S_c).view(-1, 1, 1, 1) * g)).sum((2, 3))
            with torch.no_grad():
                cam = torch.relu((w[:, :, None, None] * A).sum(1, keepdim=True))
                return up(minmax(cam))
        return step

    if a.work == "scorecam":
        @torch.no_grad()
        def step():
            out = []
            for n in range(a.batch):
                xn = norm(x01[n:n + 1])
                U = up(torch.relu(features(xn)))[0].unsqueeze(1)  # [C,1,S,S]
                f = U.flatten(1)
                r = f.max(1).values - f.min(1).values
                U = U / torch.where(r > 0, r, torch.ones_like(r)).view(-1, 1, 1, 1)
                w = torch.cat([torch.softmax(net(xn * U[k:k + a.chunk]), 1)[:, labels[n]] for k in range(0, C, a.chunk)])
                out.append(minmax(torch.relu((w.view(-1, 1, 1, 1) * U).sum(0, keepdim=True))))
            return torch.cat(out)
        return step

    if a.work == "rise":
        M = a.rise_masks or (4000 if a.arch == "vgg16" else 8000)
        masks = (torch.rand(M, 1, S, S, device=dev) < 0.5).float()

        @torch.no_grad()
        def step():
            out = []
            for n in range(a.batch):
                xn = norm(x01[n:n + 1])
                p = torch.cat([torch.softmax(net(xn * masks[k:k + a.chunk]), 1)[:, labels[n]] for k in range(0, M, a.chunk)])
                out.append(minmax((p.view(-1, 1, 1, 1) * masks).sum(0, keepdim=True)))
            return torch.cat(out)
        return step

    if a.work == "adic":
        sm = torch.rand(a.batch, 1, S, S, device=dev)
        L = S * S

        @torch.no_grad()
        def step():
            Y = probs(norm(x01)).cpu()
            O = []
            for keep in (100, 50, 15):
                zeroed = int((1 - keep / 100) * L)
                f = sm.flatten(1).clone()
                if zeroed:
                    f.scatter_(1, torch.sort(f, dim=1, stable=True).indices[:, :zeroed], 0)
                O.append(probs(norm(x01 * f.view_as(sm))).cpu())
            return Y, O
        return step
    raise ValueError(a.work)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True, help="vgg16, resnet50 or both, comma-separated")
    p.add_argument("--work", default="train-img", help="comma-separated, from: " + ", ".join(WORKS))
    p.add_argument("--method", choices=("img", "fm", "img7x7"), help="same as --work train-METHOD")
    p.add_argument("--batch", dest="batches", default="64", help="comma-separated batch sizes (default 64)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--rise-masks", type=int, default=0, help="default 4000 vgg16, 8000 resnet50")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--tf32", choices=("on", "off"), default=None)
    p.add_argument("--amp", choices=("off", "bf16"), default="off", help="bf16: each call under torch.autocast")
    p.add_argument("--cudnn-benchmark", choices=("on", "off"), default="on",
                   help="torch.backends.cudnn.benchmark (default on: PyTorch times its convolution algorithms, as lcam does)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--layers", action="store_true",
                   help="with --work forward: also time each layer as `lcam bench --layers` does (a synchronization after each)")
    a = p.parse_args()
    if a.method:
        a.work = "train-" + a.method
    archs = [x for x in a.arch.split(",") if x]
    works = [x for x in a.work.split(",") if x]
    for x in archs:
        if x not in ("vgg16", "resnet50"):
            p.error(f"--arch: {x!r} is not vgg16 or resnet50")
    for x in works:
        if x not in WORKS:
            p.error(f"--work: {x!r} is not one of {', '.join(WORKS)}")
    if a.layers and works != ["forward"]:
        p.error("--layers: only with --work forward")
    try:
        batches = [int(b) for b in a.batches.split(",") if b.strip()]
    except ValueError:
        p.error(f"--batch: expected comma-separated integers, got {a.batches!r}")
    torch.set_num_threads(a.threads)
    if a.tf32 is not None:
        set_tf32(a.tf32 == "on")
    torch.backends.cudnn.benchmark = a.cudnn_benchmark == "on"
    if a.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    dev = torch.device(a.device)
    for arch in archs:
        torch.manual_seed(0)
        net = (torchvision.models.vgg16 if arch == "vgg16" else torchvision.models.resnet50)(weights=None).eval().to(dev)
        for q in net.parameters():
            q.requires_grad_(False)
        for work in works:
            for batch in batches:
                a.arch, a.work, a.batch = arch, work, batch
                bench_one(a, net, dev)
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
        del net
    return 0


def bench_one(a, net, dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    step = make_work(a, net, dev)
    amp = (lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16)) if a.amp == "bf16" else contextlib.nullcontext
    times = []
    for i in range(a.warmup + a.iters):
        if i == a.warmup and dev.type == "cuda":  # the steady state's peak, as lcam bench
            torch.cuda.reset_peak_memory_stats()
        if dev.type == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            with amp():
                step()
            e.record()
            e.synchronize()
            t = s.elapsed_time(e)
        else:
            t0 = time.perf_counter()
            with amp():
                step()
            t = (time.perf_counter() - t0) * 1e3
        if i >= a.warmup:
            times.append(t)
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 - base
    ms = statistics.median(times)
    rec = {"impl": "pytorch", "work": a.work, "arch": a.arch, "device": a.device, "batch": a.batch,
           "threads": a.threads, "median_ms": round(ms, 3), "images_per_s": round(1000.0 * a.batch / ms, 3),
           "s_per_image": round(ms / 1000.0 / a.batch, 6), "peak_mem_mb": round(peak, 1), "torch": torch.__version__}
    if dev.type == "cuda":
        rec.update(tf32_state())
        rec["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
    if a.amp == "bf16":
        rec["precision"] = "bf16"
    line = (f"pytorch {a.work} {a.arch} {a.device} batch {a.batch}: {ms:.2f} ms, {rec['images_per_s']:.2f} images/s, "
            f"{rec['s_per_image']:.4f} s/image, peak {'alloc' if dev.type == 'cuda' else 'RSS rise'} {peak:.1f} MiB")
    print(line, file=sys.stderr if a.json else sys.stdout, flush=True)
    if a.json:
        print(json.dumps(rec), flush=True)
    if a.layers:
        time_layers(a, net, dev, amp)


def layer_groups(net, arch):
    """The forward pass's layers as `lcam bench --layers` names them: (name, first module, last
    module, what runs), a convolution or linear layer with the ReLU after it as one (lcam fuses
    them), ResNet-50's conv1 with its batch norm and ReLU (folded into lcam's convolution)."""
    groups = []

    def seq(prefix, s):
        mods = list(s.named_children())
        i = 0
        while i < len(mods):
            n, m = mods[i]
            fused = isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and i + 1 < len(mods) and \
                isinstance(mods[i + 1][1], torch.nn.ReLU)
            last = mods[i + 1][1] if fused else m
            groups.append((f"{prefix}.{n}", m, last, type(m).__name__ + ("+ReLU" if fused else "")))
            i += 2 if fused else 1

    if arch == "vgg16":
        seq("features", net.features)
        groups.append(("avgpool", net.avgpool, net.avgpool, "AdaptiveAvgPool2d"))
        seq("classifier", net.classifier)
    else:
        groups.append(("conv1", net.conv1, net.relu, "Conv2d+BatchNorm2d+ReLU"))
        groups.append(("maxpool", net.maxpool, net.maxpool, "MaxPool2d"))
        for li in range(1, 5):
            for j, b in enumerate(getattr(net, f"layer{li}")):
                groups.append((f"layer{li}.{j}", b, b, "Bottleneck"))
        groups.append(("avgpool", net.avgpool, net.avgpool, "AdaptiveAvgPool2d"))
        groups.append(("fc", net.fc, net.fc, "Linear"))
    return groups


def time_layers(a, net, dev, amp):
    """Each layer's time in the forward pass, the median of max(1, --iters) passes: the clock is
    read (after a synchronization on the GPU) when each layer's last module ends, so a layer's
    time runs from the previous layer's end (flatten and the like count with the next layer)."""
    groups = layer_groups(net, a.arch)
    per = [[] for _ in groups]
    clock = [0.0]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def ended(i):
        def hook(mod, inp, out):
            sync()
            t = time.perf_counter()
            per[i].append((t - clock[0]) * 1e3)
            clock[0] = t
        return hook

    handles = [g[2].register_forward_hook(ended(i)) for i, g in enumerate(groups)]
    x = torch.rand(a.batch, 3, a.size, a.size, device=dev)
    try:
        with torch.no_grad():
            for _ in range(max(1, a.iters)):
                sync()
                clock[0] = time.perf_counter()
                with amp():
                    net(x)
    finally:
        for h in handles:
            h.remove()
    med = [statistics.median(v) if v else 0.0 for v in per]
    total = sum(med)
    out = sys.stderr if a.json else sys.stdout
    print(f"pytorch layers: forward, {a.arch} on {a.device}, batch {a.batch}, median of {max(1, a.iters)}"
          f"{' (autocast bf16)' if a.amp == 'bf16' else ''}", file=out)
    print(f"  {'layer':16s} {'torch modules':28s} {'ms':>8s} {'%':>6s}", file=out)
    for (name, _, _, kind), ms in zip(groups, med):
        print(f"  {name:16s} {kind:28s} {ms:8.3f} {100 * ms / total if total else 0:5.1f}%", file=out)
    print(f"  {'total':16s} {'':28s} {total:8.3f}", file=out, flush=True)


if __name__ == "__main__":
    sys.exit(main())
