#!/usr/bin/env python3
"""Write the committed parity fixtures in tests/fixtures/ from PyTorch.

Outputs (all float64 references computed with torch in double precision):

  NAME.weights.h5  tiny model in lcam's backbone weights format (float32,
                   written by export_torchvision.write_weights), for
                   NAME in tiny_vgg16, tiny_resnet50.
  NAME.ref.h5      root attributes magic="lcam-fixture", version=1, arch,
                   the model configuration (cfg/hidden or width/blocks,
                   num_classes), seed; float64 datasets:
                     input             [2,3,64,64] normalized input, N(0,1)
                     features          VGG: output of features[:30] (ReLU after
                                       conv5_3); ResNet: output of layer4
                     pool              VGG only: output of features[:31]
                     logits            [2,10]
                     dlogits           [2,10] upstream gradient, N(0,1)
                     dinput            d sum(logits*dlogits) / d input
                     dfeatures         d sum(logits*dlogits) / d features
                     input_f32_dinput  dinput computed by the float32 model
                     intermediate/NAME a few backbone activations for
                                       localizing a mismatch (VGG: after
                                       max-pools 3 and 4, `features.16`,
                                       `features.23`; ResNet: `layer2`, `layer3`)
  ops.ref.h5       op-level cases, one group per case (see make_ops).

All random inputs, weights and upstream gradients are float32-representable,
so a float32 engine reads exactly the values the float64 reference used.

The tiny models use torchvision's module names and definitions at reduced
width. Their weights start from torchvision's default init, then: BatchNorm
statistics and affine parameters are randomized (as export_torchvision does),
biases are set to N(0, 0.1) so bias paths are exercised, and each conv/linear
is rescaled in forward order so its output has unit standard deviation on a
calibration batch (last layer: LOGIT_STD), keeping activations and logits of
order 1..10 instead of vanishing or exploding.

Omitted: GPU computation (everything here is CPU float64), real images, the
L-CAM attention mechanism and its losses (only their building-block ops),
ties in max-pool inputs, and pretrained weights.
"""

import argparse
import copy
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torchvision as et  # noqa: E402

MAGIC = "lcam-fixture"
VERSION = 1
LOGIT_STD = 3.0

TINY_VGG_CFG = [4, 4, -1, 8, 8, -1, 16, 16, 16, -1, 32, 32, 32, -1, 32, 32, 32, -1]
TINY_MODELS = {
    "tiny_vgg16": dict(arch="vgg16", config=dict(cfg=TINY_VGG_CFG, hidden=64, num_classes=10), seed=1601),
    "tiny_resnet50": dict(arch="resnet50", config=dict(width=8, blocks=[3, 4, 6, 3], num_classes=10),
                          seed=5001),
}
INPUT_SHAPE = (2, 3, 64, 64)


def ascii_attr(s):
    return np.bytes_(s.encode("ascii"))


def rand32(shape, gen, low, high):
    """U(low, high) values made in float32, returned as float64."""
    return (torch.rand(*shape, generator=gen, dtype=torch.float32) * (high - low) + low).double()


def randn32(shape, gen, scale=1.0):
    """N(0, scale^2) values made in float32, returned as float64 (exactly representable in float32)."""
    return (torch.randn(*shape, generator=gen, dtype=torch.float32) * scale).double()


# --------------------------------------------------------------------------
# Tiny models
# --------------------------------------------------------------------------

def backbone(model, arch, x, keep=None):
    """Backbone part; `keep` (a dict) collects intermediate activations by name."""
    if arch == "vgg16":
        for i, layer in enumerate(model.features[:30]):
            x = layer(x)
            if keep is not None and i in (16, 23):
                keep[f"features.{i}"] = x.clone()
        return x
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for name in ("layer1", "layer2", "layer3", "layer4"):
        x = getattr(model, name)(x)
        if keep is not None and name in ("layer2", "layer3"):
            keep[name] = x.clone()
    return x


def head(model, arch, f):
    if arch == "vgg16":
        x = model.features[30:](f)
        x = torch.flatten(model.avgpool(x), 1)
        return model.classifier(x)
    return model.fc(torch.flatten(model.avgpool(f), 1))


@torch.no_grad()
def calibrate(model, calib_input, gen):
    """Nonzero biases, then rescale each conv/linear to unit output std (forward order)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in layers:
        if m.bias is not None:
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    for idx, m in enumerate(layers):
        target = LOGIT_STD if idx == len(layers) - 1 else 1.0
        seen = {}
        handle = m.register_forward_hook(lambda mod, inp, out: seen.setdefault("y", out.detach().clone()))
        model(calib_input)
        handle.remove()
        s = seen["y"].std().item()
        if not np.isfinite(s) or s <= 0:
            raise RuntimeError(f"calibration: degenerate output std {s} at layer {idx}")
        m.weight.mul_(target / s)
        if m.bias is not None:
            m.bias.mul_(target / s)


def make_tiny_model(name):
    spec = TINY_MODELS[name]
    arch, seed = spec["arch"], spec["seed"]
    torch.manual_seed(seed)
    model = et.build_model(arch, **spec["config"])
    gen = torch.Generator().manual_seed(seed + 1)
    if arch == "resnet50":
        et.randomize_bn(model, generator=gen)
    model.eval()
    calib = torch.randn(4, *INPUT_SHAPE[1:], generator=gen)
    calibrate(model, calib, gen)
    return model


def run_reference(model, arch, inp, dlogits):
    """Forward + backward of sum(logits*dlogits) in the model's dtype."""
    dt = next(model.parameters()).dtype
    x = inp.to(dt).clone().requires_grad_(True)
    keep = {}
    f = backbone(model, arch, x, keep)
    fd = f.detach().requires_grad_(True)
    logits = head(model, arch, fd)
    dfeat, = torch.autograd.grad(logits, fd, dlogits.to(dt))
    dinput, = torch.autograd.grad(f, x, dfeat)
    with torch.no_grad():
        full = model(inp.to(dt))
        if not torch.allclose(full, logits, rtol=1e-5, atol=1e-5 * logits.abs().max().item()):
            raise RuntimeError("backbone/head split does not reproduce model(x)")
        out = dict(features=f.detach(), logits=logits.detach(), dinput=dinput, dfeatures=dfeat)
        if arch == "vgg16":
            out["pool"] = model.features[30](f.detach())
    out["intermediate"] = {k: v.detach() for k, v in keep.items()}
    return out


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def write_model_fixtures(name, outdir):
    spec = TINY_MODELS[name]
    arch = spec["arch"]
    m32 = make_tiny_model(name)
    m64 = copy.deepcopy(m32).double().eval()

    gen = torch.Generator().manual_seed(spec["seed"] + 2)
    inp = randn32(INPUT_SHAPE, gen)
    dlogits = randn32((INPUT_SHAPE[0], spec["config"]["num_classes"]), gen)

    r64 = run_reference(m64, arch, inp, dlogits)
    r32 = run_reference(m32, arch, inp, dlogits)

    weights_path = os.path.join(outdir, f"{name}.weights.h5")
    et.write_weights(m32, weights_path)

    import h5py
    ref_path = os.path.join(outdir, f"{name}.ref.h5")
    tmp = ref_path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["magic"] = ascii_attr(MAGIC)
        f.attrs["version"] = np.int32(VERSION)
        for k, v in et.config_attrs(m32).items():
            f.attrs[k] = v
        f.attrs["seed"] = np.int32(spec["seed"])
        f.attrs["weights"] = ascii_attr(os.path.basename(weights_path))

        def put(key, t):
            f.create_dataset(key, data=t.detach().double().numpy(), dtype=np.float64)

        put("input", inp)
        put("features", r64["features"])
        if arch == "vgg16":
            put("pool", r64["pool"])
        put("logits", r64["logits"])
        put("dlogits", dlogits)
        put("dinput", r64["dinput"])
        put("dfeatures", r64["dfeatures"])
        put("input_f32_dinput", r32["dinput"])
        for k, v in r64["intermediate"].items():
            put(f"intermediate/{k}", v)
    os.replace(tmp, ref_path)

    lg = r64["logits"]
    print(f"{name}: features {tuple(r64['features'].shape)}"
          + (f", pool {tuple(r64['pool'].shape)}" if arch == "vgg16" else "")
          + f", logits {tuple(lg.shape)} max|.| {lg.abs().max().item():.3g} std {lg.std().item():.3g}"
          + f", features max {r64['features'].abs().max().item():.3g}")
    print("  float32 vs float64 (max|diff| / max|f64|):"
          + "".join(f" {k} {rel_err(r32[k], r64[k]):.2e}"
                    for k in ("features", "logits", "dfeatures", "dinput")))
    return [weights_path, ref_path]


# --------------------------------------------------------------------------
# Op-level cases
# --------------------------------------------------------------------------

def grads(fn, inputs, dy):
    """y = fn(*inputs) and the gradients of sum(y*dy) w.r.t. every input."""
    ins = [t.clone().requires_grad_(True) for t in inputs]
    y = fn(*ins)
    gs = torch.autograd.grad(y, ins, dy)
    return y.detach(), [g.detach() for g in gs]


def make_ops(path, seed=7):
    import h5py

    gen = torch.Generator().manual_seed(seed)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["magic"] = ascii_attr(MAGIC)
        f.attrs["version"] = np.int32(VERSION)
        f.attrs["kind"] = ascii_attr("ops")

        def group(name, op, **attrs):
            g = f.create_group(name)
            g.attrs["op"] = ascii_attr(op)
            for k, v in attrs.items():
                g.attrs[k] = np.asarray(v, dtype=np.int32)
            return g

        def put(g, **arrays):
            for k, t in arrays.items():
                if t.dtype in (torch.int32, torch.int64):
                    g.create_dataset(k, data=t.numpy().astype(np.int32), dtype=np.int32)
                else:
                    g.create_dataset(k, data=t.double().numpy(), dtype=np.float64)

        # conv2d: N=2, C=3, H=9, W=7, K=4
        for name, k, s, p in (("conv_3x3_s2_p1", 3, 2, 1), ("conv_1x1_s1_p0", 1, 1, 0),
                              ("conv_7x7_s2_p3", 7, 2, 3)):
            x = randn32((2, 3, 9, 7), gen)
            w = randn32((4, 3, k, k), gen)
            b = randn32((4,), gen)
            ho = (9 + 2 * p - k) // s + 1
            wo = (7 + 2 * p - k) // s + 1
            dy = randn32((2, 4, ho, wo), gen)
            y, (dx, dw, db) = grads(lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride=s, padding=p), (x, w, b), dy)
            put(group(name, "conv2d", kernel=k, stride=s, padding=p), x=x, w=w, b=b, y=y, dy=dy, dx=dx, dw=dw, db=db)

        # max_pool2d (no ties: continuous random values)
        for name, k, s, p in (("maxpool_3x3_s2_p1", 3, 2, 1), ("maxpool_2x2_s2", 2, 2, 0)):
            x = randn32((2, 3, 9, 7), gen)
            yshape = F.max_pool2d(x, k, s, p).shape
            dy = randn32(tuple(yshape), gen)
            y, (dx,) = grads(lambda x_: F.max_pool2d(x_, k, s, p), (x,), dy)
            put(group(name, "max_pool2d", kernel=k, stride=s, padding=p), x=x, y=y, dy=dy, dx=dx)

        # adaptive_avg_pool2d
        for name, hw, out in (("adaptive_avg_7x7_from_10x9", (10, 9), (7, 7)),
                              ("adaptive_avg_7x7_from_3x2", (3, 2), (7, 7)),
                              ("adaptive_avg_1x1_from_5x4", (5, 4), (1, 1))):
            x = randn32((2, 3) + hw, gen)
            dy = randn32((2, 3) + out, gen)
            y, (dx,) = grads(lambda x_: F.adaptive_avg_pool2d(x_, out), (x,), dy)
            put(group(name, "adaptive_avg_pool2d", output_size=list(out)), x=x, y=y, dy=dy, dx=dx)

        # linear: y = x w^T + b
        x = randn32((3, 5), gen)
        w = randn32((4, 5), gen)
        b = randn32((4,), gen)
        dy = randn32((3, 4), gen)
        y, (dx, dw, db) = grads(F.linear, (x, w, b), dy)
        put(group("linear", "linear"), x=x, w=w, b=b, y=y, dy=dy, dx=dx, dw=dw, db=db)

        # eval-mode batch norm (what BN folding must reproduce), eps 1e-5
        x = randn32((2, 3, 4, 5), gen)
        mean = randn32((3,), gen, 0.1)
        var = rand32((3,), gen, 0.5, 1.5)
        gamma = rand32((3,), gen, 0.5, 1.5)
        beta = randn32((3,), gen, 0.1)
        dy = randn32((2, 3, 4, 5), gen)
        y, (dx,) = grads(lambda x_: F.batch_norm(x_, mean, var, gamma, beta, training=False, eps=1e-5), (x,), dy)
        g = group("batchnorm_eval", "batch_norm")
        g.attrs["eps"] = np.float64(1e-5)
        put(g, x=x, running_mean=mean, running_var=var, weight=gamma, bias=beta, y=y, dy=dy, dx=dx)

        # softmax / log_softmax over dim 1
        for name, fn in (("log_softmax", lambda x_: F.log_softmax(x_, dim=1)),
                         ("softmax", lambda x_: F.softmax(x_, dim=1))):
            x = randn32((3, 10), gen, 3.0)
            dy = randn32((3, 10), gen)
            y, (dx,) = grads(fn, (x,), dy)
            put(group(name, name, dim=1), x=x, y=y, dy=dy, dx=dx)

        # cross_entropy, mean reduction; dlogits = d loss / d logits
        logits = randn32((4, 10), gen, 3.0)
        labels = torch.randint(0, 10, (4,), generator=gen, dtype=torch.int64)
        loss, (dlogits,) = grads(lambda l_: F.cross_entropy(l_, labels, reduction="mean"), (logits,),
                                 torch.ones((), dtype=torch.float64))
        g = group("cross_entropy", "cross_entropy")
        g.attrs["reduction"] = ascii_attr("mean")
        put(g, logits=logits, labels=labels.to(torch.int32), loss=loss.reshape(1), dlogits=dlogits)
    os.replace(tmp, path)
    return [path]


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--outdir", default=os.path.join(here, "..", "tests", "fixtures"))
    args = p.parse_args(argv)
    outdir = os.path.normpath(args.outdir)
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(min(4, torch.get_num_threads()))

    written = []
    for name in TINY_MODELS:
        written += write_model_fixtures(name, outdir)
    written += make_ops(os.path.join(outdir, "ops.ref.h5"))

    et.print_sizes(written, os.path.join(here, ".."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
