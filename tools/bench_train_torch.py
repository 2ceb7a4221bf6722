#!/usr/bin/env python3
"""PyTorch side of the L-CAM training-step benchmark (compared with `lcam bench --train M`).

One step = the frozen backbone's features of the normalized image (no grad), the attention's
1x1 convolution (all 1000 maps, then each image's own label map, as the official code does),
sigmoid, and then for `img`/`img7x7`: bilinear upsampling to 224, masking of the [0,1] image,
normalization and the whole frozen network with gradients flowing back to the attention; for
`fm`: the mask on the feature maps and the head. Loss 1.5 CE + 2 area + 0.01 TV, backward,
SGD (Nesterov, weight decay) on the attention. Random weights (torchvision's init), random
images and labels: speed does not depend on their values. CPU: perf_counter; CUDA: events.
Reports the median ms per step, images/s and peak memory (CUDA: max_memory_allocated; CPU:
peak RSS rise). Omits data loading, AMP and torch.compile.
"""

import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as Fn
import torchvision

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def tv(m):
    d1 = ((m[:, :, 1:, :] - m[:, :, :-1, :]) ** 2).sum()
    d2 = ((m[:, :, :, 1:] - m[:, :, :, :-1]) ** 2).sum()
    b = (m[:, :, 0, :] ** 2).sum() + (m[:, :, -1, :] ** 2).sum() + (m[:, :, :, 0] ** 2).sum() + (m[:, :, :, -1] ** 2).sum()
    return (d1 + d2 + 0.3 * b) / (2 * m.shape[0])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True, choices=("vgg16", "resnet50"))
    p.add_argument("--method", default="img", choices=("img", "fm", "img7x7"))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--tf32", choices=("on", "off"), default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.tf32 is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "on"
    dev = torch.device(a.device)
    torch.manual_seed(0)
    net = (torchvision.models.vgg16 if a.arch == "vgg16" else torchvision.models.resnet50)(weights=None).eval().to(dev)
    for q in net.parameters():
        q.requires_grad_(False)
    if a.arch == "vgg16":
        cut = 31 if a.method == "img7x7" else 30
        features, C = net.features[:cut], 512
        def head(f):
            return net.classifier(torch.flatten(net.avgpool(net.features[cut:](f)), 1))
    else:
        body = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
        features, C = body, 2048
        def head(f):
            return net.fc(torch.flatten(net.avgpool(f), 1))
    attn = torch.nn.Conv2d(C, 1000, 1).to(dev)
    opt = torch.optim.SGD([{"params": [attn.weight], "lr": 1e-3}, {"params": [attn.bias], "lr": 1e-3}],
                          momentum=0.9, nesterov=True, weight_decay=5e-4)
    mean, std = MEAN.to(dev), STD.to(dev)
    x01 = torch.rand(a.batch, 3, 224, 224, device=dev)
    labels = (torch.arange(a.batch, device=dev) * 37) % 1000

    def step():
        with torch.no_grad():
            F = features((x01 - mean) / std)
        c = attn(F)
        m = torch.sigmoid(c[torch.arange(a.batch, device=dev), labels].unsqueeze(1))
        if a.method == "fm":
            logits = head(F * m)
        else:
            M = Fn.interpolate(m, size=(224, 224), mode="bilinear", align_corners=False)
            logits = net((x01 * M - mean) / std)
        loss = 1.5 * Fn.cross_entropy(logits, labels) + 2 * ((m + 5e-4) ** 0.3).mean() + 0.01 * tv(m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = []
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    for i in range(a.warmup + a.iters):
        if dev.type == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            step()
            e.record()
            e.synchronize()
            t = s.elapsed_time(e)
        else:
            t0 = time.perf_counter()
            step()
            t = (time.perf_counter() - t0) * 1e3
        if i >= a.warmup:
            times.append(t)
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 - base
    ms = statistics.median(times)
    rec = {"impl": "pytorch", "work": "lcam-train-" + a.method, "arch": a.arch, "device": a.device, "batch": a.batch,
           "threads": a.threads, "median_ms": round(ms, 3), "images_per_s": round(1000.0 * a.batch / ms, 3),
           "peak_mem_mb": round(peak, 1)}
    line = (f"pytorch L-CAM-{a.method} step {a.arch} {a.device} batch {a.batch}: {ms:.2f} ms, "
            f"{rec['images_per_s']:.2f} images/s, peak {'alloc' if dev.type == 'cuda' else 'RSS rise'} {peak:.1f} MiB")
    print(line, file=sys.stderr if a.json else sys.stdout)
    if a.json:
        print(json.dumps(rec))


if __name__ == "__main__":
    main()
