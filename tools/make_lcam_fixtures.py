#!/usr/bin/env python3
"""Write the L-CAM training-step parity fixtures tests/fixtures/lcam_<case>.ref.h5 from PyTorch.

Each case trains the L-CAM attention mechanism (a 1x1 convolution, K=10 rows)
for three SGD steps on one fixed batch, on top of a frozen tiny backbone read
from tests/fixtures/tiny_vgg16.weights.h5 or tiny_resnet50.weights.h5 (written
by make_fixtures.py). The reference runs in float64 (model converted to
double, eval mode, so dropout is off); the same computation in float32 is run
as well and its distance to the float64 result is printed (and stored as
attributes) as the float32 floor a float32 engine can be held to.

Cases (CASES below):
  vgg_fm, vgg_img, vgg_img7x7, resnet_fm, resnet_img   "paper" selection, loss lcam
  vgg_img_official, resnet_fm_official                 "official" selection, loss lcam
  vgg_img_ce                                           "paper" selection, loss ce

The math, literally:
  normalize(x) = (x - mean[c]) / std[c], mean (0.485, 0.456, 0.406),
                 std (0.229, 0.224, 0.225).
  F       VGG fm/img: features[:30](normalize(x01)) (ReLU after the last conv);
          VGG img7x7: features[:31] (after the last max-pool);
          ResNet: everything up to and including layer4.
  rows    paper: J = 1, rows[n][0] = y[n]; official: J = N, rows[n][j] = y[j]
          (the official code's a[:, labels]).
  c       c[n,j] = sum_ch W[rows[n][j], ch] * F[n, ch] + b[rows[n][j]],  [N,J,h,w]
  m       sigmoid(c); m_own[n] = m[n,0] (paper) or m[n,n] (official), [N,1,h,w].
  img     M = interpolate(m_own, size=(64,64), bilinear, align_corners=False);
          logits = model(normalize(x01 * M)).
  fm      logits = head(F * m_own); head = VGG features[30:], avgpool, flatten,
          classifier; ResNet avgpool, flatten, fc.
  m_sel   m_own (paper) or m (official, all N*J maps).
  area    mean((m_sel + 0.0005) ** 0.3).
  TV      sum over maps of [sum (m[i+1,j]-m[i,j])^2 + sum (m[i,j+1]-m[i,j])^2
          + 0.3 * (sum m[0,:]^2 + sum m[h-1,:]^2 + sum m[:,0]^2 + sum m[:,w-1]^2)]
          / (2 N); corner pixels appear in two border sums.
  loss    lcam: 1.5 * CE(logits, y) + 2 * area + 0.01 * TV; ce: CE(logits, y)
          (CE averaged over the batch).
  grads   dL/dW, dL/db of the attention only (backbone frozen).
  SGD     torch.optim.SGD, groups weight lr 1e-2 / bias lr 2e-2, momentum 0.9,
          Nesterov, weight decay 5e-4 on both; 3 steps on the same batch.

File layout: root attributes magic="lcam-fixture", version=1, arch, weights
(file name of the backbone weights), method (fm | img | img7x7), selection
(paper | official), loss (lcam | ce), lr_w, lr_b, momentum, weight_decay,
nesterov (int32 0/1), steps, seed_x, seed_attn, and the float32-vs-float64
floors f32_rel_<name> (max|f32 - f64| / max|f64|) for grad_weight, grad_bias,
logits, loss_total and weight_step3. Datasets, all float64 except labels/rows:
  x01 [3,3,64,64]      the batch in [0,1] (float32-representable values)
  labels int32 [3]     y (with a repeated label)
  rows int32 [N,J]     the selected attention rows
  attn_weight0 [10,C,1,1], attn_bias0 [10]   initial parameters (float32 values)
  features             F
  c [N,J,h,w], m_own [N,1,h,w], M [N,1,64,64] (img cases only), logits [N,10]
  loss_ce, loss_area, loss_tv, loss_total    shape [1], at the initial parameters
  grad_weight [10,C,1,1], grad_bias [10]     at the initial parameters
  weight_step1..3, bias_step1..3             parameters after each SGD step
  loss_total_steps [3]                       loss at the start of each step
Datasets are stored with the HDF5 shuffle + deflate filters (transparent to
any reader built with zlib, as every stock libhdf5 is) to keep the files small.

--gradcheck additionally checks the float64 gradients with
torch.autograd.gradcheck (CASE names, or "all").

Omitted: GPU computation, data augmentation and real images, learning-rate
decay across epochs, the released full-size checkpoints, batch sizes other
than 3, and inference (min-max normalized maps), which other fixtures cover.
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

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
K = 10
IMAGE = 64
LABELS = [1, 7, 1]
SEED_X = 4242
SEED_ATTN = 17
STEPS = 3
LR_W, LR_B = 1e-2, 2e-2
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
NESTEROV = True
AREA_EPS, AREA_POW = 0.0005, 0.3
TV_BORDER = 0.3
W_CE, W_AREA, W_TV = 1.5, 2.0, 0.01
COMPRESS_MIN_BYTES = 16384

WEIGHTS = {"vgg16": "tiny_vgg16.weights.h5", "resnet50": "tiny_resnet50.weights.h5"}

CASES = {
    "vgg_fm": dict(arch="vgg16", method="fm", selection="paper", loss="lcam"),
    "vgg_img": dict(arch="vgg16", method="img", selection="paper", loss="lcam"),
    "vgg_img7x7": dict(arch="vgg16", method="img7x7", selection="paper", loss="lcam"),
    "resnet_fm": dict(arch="resnet50", method="fm", selection="paper", loss="lcam"),
    "resnet_img": dict(arch="resnet50", method="img", selection="paper", loss="lcam"),
    "vgg_img_official": dict(arch="vgg16", method="img", selection="official", loss="lcam"),
    "resnet_fm_official": dict(arch="resnet50", method="fm", selection="official", loss="lcam"),
    "vgg_img_ce": dict(arch="vgg16", method="img", selection="paper", loss="ce"),
}


def ascii_attr(s):
    return np.bytes_(s.encode("ascii"))


def rel_err(a, b):
    b = b.double()
    return ((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


# --------------------------------------------------------------------------
# The L-CAM forward pass and loss
# --------------------------------------------------------------------------

def normalize(x):
    mean = torch.tensor(MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def features(model, arch, method, x):
    if arch == "vgg16":
        return model.features[:31 if method == "img7x7" else 30](x)
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def head(model, arch, f):
    if arch == "vgg16":
        x = model.features[30:](f)
        return model.classifier(torch.flatten(model.avgpool(x), 1))
    return model.fc(torch.flatten(model.avgpool(f), 1))


def rows_of(y, selection):
    n = y.shape[0]
    if selection == "paper":
        return y.view(n, 1)
    return y.view(1, n).expand(n, n)


def total_variation(m):
    """TV of the maps m [N, J, h, w], divided by 2 * N (N = batch size)."""
    n = m.shape[0]
    dh = ((m[:, :, 1:, :] - m[:, :, :-1, :]) ** 2).sum()
    dw = ((m[:, :, :, 1:] - m[:, :, :, :-1]) ** 2).sum()
    border = ((m[:, :, 0, :] ** 2).sum() + (m[:, :, -1, :] ** 2).sum()
              + (m[:, :, :, 0] ** 2).sum() + (m[:, :, :, -1] ** 2).sum())
    return (dh + dw + TV_BORDER * border) / (2 * n)


def lcam_forward(model, spec, x01, y, W, b, f=None):
    """Everything of one training step's forward pass, as a dict of tensors."""
    arch, method, selection = spec["arch"], spec["method"], spec["selection"]
    n = x01.shape[0]
    if f is None:
        with torch.no_grad():
            f = features(model, arch, method, normalize(x01))
    rows = rows_of(y, selection)                       # [N, J]
    a = F.conv2d(f, W, b)                              # [N, K, h, w]
    c = a[torch.arange(n).view(n, 1), rows]            # [N, J, h, w]
    m = torch.sigmoid(c)
    own = 0 if selection == "paper" else torch.arange(n)
    m_own = m[torch.arange(n), own].unsqueeze(1)       # [N, 1, h, w]
    out = dict(features=f, rows=rows, c=c, m_own=m_own)
    if method in ("img", "img7x7"):
        M = F.interpolate(m_own, size=(x01.shape[2], x01.shape[3]), mode="bilinear", align_corners=False)
        out["M"] = M
        logits = model(normalize(x01 * M))
    else:
        logits = head(model, arch, f * m_own)
    m_sel = m_own if selection == "paper" else m
    ce = F.cross_entropy(logits, y)
    area = ((m_sel + AREA_EPS) ** AREA_POW).mean()
    tv = total_variation(m_sel)
    total = W_CE * ce + W_AREA * area + W_TV * tv if spec["loss"] == "lcam" else ce
    out.update(logits=logits, loss_ce=ce, loss_area=area, loss_tv=tv, loss_total=total)
    return out


def run_case(model, spec, x01, y, W0, b0):
    """Forward, gradients at (W0, b0), and STEPS SGD steps, in the model's dtype."""
    dt = next(model.parameters()).dtype
    x01 = x01.to(dt)
    with torch.no_grad():
        f = features(model, spec["arch"], spec["method"], normalize(x01))
    W = W0.to(dt).clone().requires_grad_(True)
    b = b0.to(dt).clone().requires_grad_(True)
    opt = torch.optim.SGD([{"params": [W], "lr": LR_W}, {"params": [b], "lr": LR_B}],
                          lr=LR_W, momentum=MOMENTUM, nesterov=NESTEROV, weight_decay=WEIGHT_DECAY)
    res = {}
    losses = []
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = lcam_forward(model, spec, x01, y, W, b, f)
        out["loss_total"].backward()
        losses.append(out["loss_total"].detach().reshape(1))
        if step == 1:
            res.update({k: (v.detach() if torch.is_tensor(v) else v) for k, v in out.items()})
            res["grad_weight"] = W.grad.detach().clone()
            res["grad_bias"] = b.grad.detach().clone()
        opt.step()
        res[f"weight_step{step}"] = W.detach().clone()
        res[f"bias_step{step}"] = b.detach().clone()
    res["loss_total_steps"] = torch.cat(losses)
    return res


def gradcheck_case(model64, spec, x01, y, W0, b0):
    """torch.autograd.gradcheck of L(W, b) in float64; returns True or raises."""
    x = x01.double()
    with torch.no_grad():
        f = features(model64, spec["arch"], spec["method"], normalize(x))
    W = W0.double().clone().requires_grad_(True)
    b = b0.double().clone().requires_grad_(True)
    fn = lambda W_, b_: lcam_forward(model64, spec, x, y, W_, b_, f)["loss_total"]  # noqa: E731
    return torch.autograd.gradcheck(fn, (W, b), eps=1e-6, atol=1e-8, rtol=1e-6)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def make_inputs():
    gen = torch.Generator().manual_seed(SEED_X)
    x01 = torch.rand(len(LABELS), 3, IMAGE, IMAGE, generator=gen, dtype=torch.float32)
    y = torch.tensor(LABELS, dtype=torch.int64)
    return x01, y


def init_attention(channels):
    """nn.Conv2d's default init (uniform(+-1/sqrt(C)) for weight and bias), float32."""
    torch.manual_seed(SEED_ATTN)
    conv = nn.Conv2d(channels, K, kernel_size=1)
    return conv.weight.detach().clone(), conv.bias.detach().clone()


def write_case(name, spec, models, x01, y, outdir):
    import h5py

    arch = spec["arch"]
    m32, m64 = models[arch]
    with torch.no_grad():
        C = features(m32, arch, spec["method"], normalize(x01[:1])).shape[1]
    W0, b0 = init_attention(C)
    r64 = run_case(m64, spec, x01, y, W0, b0)
    r32 = run_case(m32, spec, x01, y, W0, b0)
    floors = {k: rel_err(r32[k], r64[k])
              for k in ("grad_weight", "grad_bias", "logits", "loss_total", f"weight_step{STEPS}")}

    path = os.path.join(outdir, f"lcam_{name}.ref.h5")
    tmp = path + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            a = f.attrs
            a["magic"] = ascii_attr(MAGIC)
            a["version"] = np.int32(VERSION)
            a["arch"] = ascii_attr(arch)
            a["weights"] = ascii_attr(WEIGHTS[arch])
            a["method"] = ascii_attr(spec["method"])
            a["selection"] = ascii_attr(spec["selection"])
            a["loss"] = ascii_attr(spec["loss"])
            a["lr_w"] = np.float64(LR_W)
            a["lr_b"] = np.float64(LR_B)
            a["momentum"] = np.float64(MOMENTUM)
            a["weight_decay"] = np.float64(WEIGHT_DECAY)
            a["nesterov"] = np.int32(1 if NESTEROV else 0)
            a["steps"] = np.int32(STEPS)
            a["seed_x"] = np.int32(SEED_X)
            a["seed_attn"] = np.int32(SEED_ATTN)
            for k, v in floors.items():
                a[f"f32_rel_{k}"] = np.float64(v)

            def put(key, t, dtype=np.float64):
                arr = t.detach().numpy().astype(dtype) if torch.is_tensor(t) else np.asarray(t, dtype)
                if arr.nbytes < COMPRESS_MIN_BYTES:
                    f.create_dataset(key, data=arr, dtype=dtype)
                else:  # one chunk: no per-chunk index overhead
                    f.create_dataset(key, data=arr, dtype=dtype, chunks=arr.shape, shuffle=True,
                                     compression="gzip", compression_opts=9)

            put("x01", x01.double())
            put("labels", y, np.int32)
            put("rows", r64["rows"], np.int32)
            put("attn_weight0", W0.double())
            put("attn_bias0", b0.double())
            for k in ("features", "c", "m_own", "M", "logits"):
                if k in r64:
                    put(k, r64[k])
            for k in ("loss_ce", "loss_area", "loss_tv", "loss_total"):
                put(k, r64[k].reshape(1))
            put("grad_weight", r64["grad_weight"])
            put("grad_bias", r64["grad_bias"])
            for s in range(1, STEPS + 1):
                put(f"weight_step{s}", r64[f"weight_step{s}"])
                put(f"bias_step{s}", r64[f"bias_step{s}"])
            put("loss_total_steps", r64["loss_total_steps"])
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

    fs = tuple(r64["features"].shape)
    print(f"{name}: F {fs}, c {tuple(r64['c'].shape)}, logits max|.| {r64['logits'].abs().max().item():.3g}, "
          f"loss ce {r64['loss_ce'].item():.6g} area {r64['loss_area'].item():.6g} "
          f"tv {r64['loss_tv'].item():.6g} total {r64['loss_total'].item():.6g}, "
          f"steps {' '.join(f'{v:.6g}' for v in r64['loss_total_steps'].tolist())}")
    print("  float32 vs float64 (max|diff| / max|f64|):"
          + "".join(f" {k} {v:.2e}" for k, v in floors.items()))
    return path, (W0, b0)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    fixtures = os.path.join(here, "..", "tests", "fixtures")
    p.add_argument("--outdir", default=fixtures)
    p.add_argument("--weights-dir", default=fixtures, help="where the tiny_*.weights.h5 files are")
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    p.add_argument("--gradcheck", nargs="*", default=None, metavar="CASE",
                   help="also gradcheck these cases in float64 ('all' for every case; "
                        "no name: vgg_img_official)")
    args = p.parse_args(argv)
    outdir = os.path.normpath(args.outdir)
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(min(4, torch.get_num_threads()))

    models = {}
    for arch, fname in WEIGHTS.items():
        m32 = et.model_from_weights(os.path.join(args.weights_dir, fname)).eval()
        for prm in m32.parameters():
            prm.requires_grad_(False)
        m64 = copy.deepcopy(m32).double().eval()
        models[arch] = (m32, m64)

    x01, y = make_inputs()
    written, inits = [], {}
    for name in args.cases:
        path, init = write_case(name, CASES[name], models, x01, y, outdir)
        written.append(path)
        inits[name] = init

    if args.gradcheck is not None:
        names = args.gradcheck or ["vgg_img_official"]
        if names == ["all"]:
            names = list(CASES)
        for name in names:
            spec = CASES[name]
            if name in inits:
                W0, b0 = inits[name]
            else:
                with torch.no_grad():
                    C = features(models[spec["arch"]][0], spec["arch"], spec["method"],
                                 normalize(x01[:1])).shape[1]
                W0, b0 = init_attention(C)
            ok = gradcheck_case(models[spec["arch"]][1], spec, x01, y, W0, b0)
            print(f"gradcheck {name}: {'ok' if ok else 'FAILED'}")

    et.print_sizes(written, os.path.join(here, ".."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
