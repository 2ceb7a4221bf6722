#!/usr/bin/env python3
"""Trains the demo's classifier: a small VGG (VGG-16's builder and layer names; four blocks of
8, 16, 32 and 64 channels, hidden 128, 10 classes) on the Fashion-MNIST scenes that `lcam scenes`
writes, and exports it in lcam's weights format (tools/export_torchvision.py). At 112x112 its last
convolution gives 14x14 maps and its last max-pool 7x7, the geometry of VGG-16 at 224x224.

Recipe (reproducible for a seed; the committed weights/demo_vgg_scenes.h5 came from it):
    lcam scenes --out /tmp/demo/train --count 40000 --size 112 --seed 1 --split train
    lcam scenes --out /tmp/demo/train2 --count 40000 --first 40000 --size 112 --seed 1 --split train
    lcam scenes --out /tmp/demo/val --count 2000 --first 1000000 --size 112 --seed 1 --split test
    python3 tools/train_demo_classifier.py --train /tmp/demo/train --val /tmp/demo/val \\
        --out /tmp/demo/stage1.h5
    python3 tools/train_demo_classifier.py --train /tmp/demo/train --val /tmp/demo/val \\
        --init /tmp/demo/stage1.h5 --dropout 0 --lr 5e-4 --epochs 5 --warmup 0.2 \\
        --out /tmp/demo/stage2.h5
    python3 tools/train_demo_classifier.py --train /tmp/demo/train /tmp/demo/train2 \\
        --val /tmp/demo/val --init /tmp/demo/stage2.h5 --dropout 0 --lr 3e-4 --epochs 3 \\
        --warmup 0.1 --out weights/demo_vgg_scenes.h5
Inputs are the scenes as ToTensor + ImageNet Normalize (what lcam's pipeline gives with
resize = crop = 112). Adam with a linear warm-up and a cosine decay, cross-entropy, random
horizontal flips; prints the held-out top-1 after each epoch and writes the weights after each.

Measured (2-core CPU): 160-210 s per epoch of 40000 scenes. Held-out top-1 by epoch, stage 1
(dropout 0.5): 52.1, 63.8, 71.0, 74.6, 77.4, 76.9, 77.5, 78.1; stage 2 (no dropout, lr 5e-4):
77.9, 78.0, 79.8, 80.0, 80.6; stage 3 (40000 more scenes, lr 3e-4): 80.3, 81.9, 82.1. Short of
the 85% first aimed at: Shirt is the weak class (recall 9% after stage 1, 51.3% at the end; the
others 73.7-95.3%), being hard to tell from T-shirt, Pullover and Coat at this size. Stage 2's
training loss fell while its held-out accuracy stayed nearly flat; doubling the scenes (stage
3) moved it again, so more scenes are the lever.
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torchvision as et  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def load(folder):
    """Images as uint8 NCHW (normalized per batch: 40000 float scenes would take 6 GB)."""
    paths, labels = [], []
    with open(os.path.join(folder, "list.txt")) as f:
        for line in f:
            p, l = line.split()
            paths.append(os.path.join(folder, p))
            labels.append(int(l))
    x = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths])
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.tensor(labels)


def normalize(x_u8):
    return (x_u8.float() / 255.0 - torch.from_numpy(MEAN)) / torch.from_numpy(STD)


def accuracy(model, x, y, batch=256):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(normalize(x[i:i + batch])).argmax(1) == y[i:i + batch]).sum().item()
    return 100.0 * correct / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True, nargs="+", help="folders written by lcam scenes")
    p.add_argument("--val", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg", default="8,8,M,16,16,M,32,32,32,M,64,64,64,M",
                   help="VGG layer list: widths and M for max-pool")
    p.add_argument("--warmup", type=float, default=0.5, help="epochs of linear learning-rate warm-up")
    p.add_argument("--dropout", type=float, default=0.5, help="classifier dropout while training (VGG's: 0.5)")
    p.add_argument("--init", help="start from this weights file (another cosine cycle); --cfg and --hidden are ignored")
    p.add_argument("--hidden", type=int, default=128, help="classifier hidden width")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    parts = [load(folder) for folder in a.train]
    xt, yt = torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
    xv, yv = load(a.val)
    cfg = [-1 if v == "M" else int(v) for v in a.cfg.split(",")]
    model = et.model_from_weights(a.init) if a.init else et.build_vgg(cfg=cfg, hidden=a.hidden, num_classes=10)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = a.dropout
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    g = torch.Generator().manual_seed(a.seed)
    steps_per_epoch = (len(xt) + a.batch - 1) // a.batch
    total_steps, warm = a.epochs * steps_per_epoch, max(1, int(a.warmup * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / total_steps)))))
    for epoch in range(a.epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(xt), generator=g)
        total = 0.0
        for i in range(0, len(xt), a.batch):
            idx = perm[i:i + a.batch]
            x = normalize(xt[idx])
            flip = torch.rand(len(idx), generator=g) < 0.5
            x[flip] = x[flip].flip(3)
            loss = F.cross_entropy(model(x), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{a.epochs}: loss {total / len(xt):.4f}, held-out top-1 "
              f"{accuracy(model, xv, yv):.2f}% ({time.time() - t0:.0f} s)", flush=True)
        model.eval()
        et.write_weights(model, a.out)  # after every epoch: a usable classifier early
    model.eval()
    et.write_weights(model, a.out)
    print(f"wrote {a.out}: held-out top-1 {accuracy(model, xv, yv):.2f}% on {len(xv)} scenes")


if __name__ == "__main__":
    main()
