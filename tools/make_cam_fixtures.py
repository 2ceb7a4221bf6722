#!/usr/bin/env python3
"""Write the saliency-map and AD/IC parity fixtures tests/fixtures/cam_<arch>.ref.h5 from PyTorch.

For each tiny backbone (tests/fixtures/tiny_vgg16.weights.h5 and tiny_resnet50.weights.h5,
written by make_fixtures.py; 10 classes, 64x64 inputs) this computes, in float64 (model
converted to double, eval mode), the saliency maps (SM) of L-CAM, Grad-CAM, Grad-CAM++ (as the
paper's comparison ran it, and with the Grad-CAM++ paper's Eq. 19), Score-CAM and RISE for a
fixed batch of two images, and Average Drop / Increase in Confidence on given maps. The same
maps are computed by the float32 model as well; max|SM_f32 - SM_f64| per method is printed and
stored as the float32 floor a float32 engine can be held to.

The math, literally (H = W = 64 here, 224 in the paper; every "upsample" is
F.interpolate(mode="bilinear", align_corners=False), i.e. edge pixels clamped):

  x01      torch.rand(2, 3, 64, 64) (generator seeded with SEED_X, float32), image 1 halved
           (darker, so that the tiny VGG predicts another class for it), then quantized to
           the 8-bit levels round(255 u) / 255 in float32 as ToTensor() gives for an image.
  normalize(x) = (x - mean[c]) / std[c], mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
           The network input is normalize(x01); "softmax score" is softmax(logits)[class].
  A        VGG: features[:30](input) (= the output of features[29], the ReLU after the last
           conv); ResNet: the output of layer4. [N, C, h, w].
  minmax   per map, over its h x w (or H x W) pixels: (x - min) / (max - min), and all zeros
           where max == min (so a constant map never gives NaN; the reference
           implementations divide 0 by 0 there).
  classes  the top-1 class of each image (sm/*, adic/*, ties/*), and the fixed class 3 for
           image 0 (sm_class3/*; the script checks that 3 is not image 0's top-1).

  lcam            c = conv1x1(A; attn_weight, attn_bias)[class] (pre-sigmoid); SM =
                  upsample(minmax(c)). attn_* is nn.Conv2d(C, 10, 1)'s default init after
                  torch.manual_seed(SEED_ATTN).
  gradcam         g = d logit[class] / dA; w_k = mean_ab g_k; cam = minmax(relu(sum_k w_k A_k));
                  SM = upsample(cam).
  gradcampp       S = softmax score of the class (the model wrapped in a softmax, as the
                  comparison ran it); g = dS/dA;
                  D = 2 g^2 + sum_ab(A_k * g^3)   (summed per channel, broadcast over ij);
                  alpha = g^2 / (where(D != 0, D, 1) + 1e-7)   (zero replaced first, then +1e-7);
                  w_k = sum_ab(alpha * relu(exp(S) * g)); cam = minmax(relu(sum_k w_k A_k))
                  at feature resolution; SM = upsample(cam).
  gradcampp_paper as gradcampp (same S, exp(S), zero replacement and 1e-7) but with Eq. 19's
                  denominator D = 2 g^2 + sum_ab(A_k) * g^3. With ResNet's global-average
                  head g is constant over ab, so the two variants coincide there.
  scorecam        U_k = upsample(relu(A_k)); U_k /= r_k with r_k = max(U_k) - min(U_k), r_k = 1
                  where it is 0 (no min subtracted); weight_k = softmax score of the class on
                  normalize(x01) * U_k (the mask multiplies the normalized image);
                  SM = minmax(relu(sum_k weight_k U_k)) at H x W.
  rise            RISE_N grids G_i = (torch.rand(s, s) < p) from a generator seeded with
                  SEED_RISE (all grids first, then shifts = randint(0, cell, (N, 2)) from the
                  same generator), cell = ceil(H / s) = 10; M_i = float32(up(G_i)[dy:dy+H,
                  dx:dx+W]) with up = bilinear upsampling to (s + 1) * cell = 80 and (dy, dx)
                  = shifts[i]; p_i = softmax score of the class on normalize(x01) * M_i;
                  SM = minmax(sum_i p_i M_i / N / p).

  AD/IC on given maps, for keep in (100, 50, 15) percent, per image n with class c_n:
    map        the SM rounded to float32 (exactly what a float32 reader of sm/<method> gets;
               the rounding fixes the order of nearly equal pixels), or ties/<case>/map;
    threshold  z = int((1 - keep / 100) * H * W) pixels are zeroed (n_zeroed: 0, 2048, 3481):
               the first z of a stable ascending argsort of the flattened (row-major) map,
               i.e. the lowest values, ties at the threshold zeroed in row-major order; the
               other pixels keep their soft values. This equals the official evaluation's
               drop_Npercent (kthvalue, zero what is below it, then zero the first surplus
               pixels equal to it in row-major order), which the script checks on every map.
    Y_n = softmax score of c_n on normalize(x01_n); O_n = the same on
          normalize(x01_n * thresholded_n); AD = 100 / N * sum_n max(0, Y_n - O_n) / Y_n;
          IC = 100 / N * #{n : O_n > Y_n} (N = 2).

File layout: root attributes magic="lcam-fixture", version=1, kind="cam", arch, weights (file
name of the backbone weights), image_size, num_classes, seed_x, seed_attn, seed_rise, rise_n,
rise_s, rise_p, rise_cell, rise_up, class_specific (3), gradcampp_eps, keep_percents int32
[3], n_zeroed int32 [3], methods (comma-separated), the convention strings minmax, upsample,
gradcampp_score, gradcampp_alpha, gradcampp_paper_alpha, scorecam, rise, adic_map,
adic_threshold, and the float32-vs-float64 floors f32_abs_sm_<method> (max |SM_f32 - SM_f64|
over sm/ and sm_class3/; SMs are in [0, 1]). Datasets, float64 unless marked:
  x01 [2,3,64,64]              the batch in [0,1] (float32 values)
  classes int32 [2]            top-1 class of each image;  class3 int32 [1] (= 3)
  logits [2,10], probs [2,10], features [2,C,h,w] (A)
  lcam/attn_weight [10,C,1,1], lcam/attn_bias [10] (float32 values), lcam/c [2,h,w]
  gradcam/grad [2,C,h,w] (d logit / dA), gradcam/weights [2,C], gradcam/cam [2,h,w] (after
    minmax, before upsampling); gradcampp/score [2] (S), gradcampp/grad [2,C,h,w] (dS/dA),
    gradcampp/alpha [2,C,h,w], gradcampp/weights [2,C], gradcampp/cam [2,h,w];
    gradcampp_paper/alpha, /weights, /cam likewise
  scorecam/weights [2,C]       the softmax scores of the C masked inputs
  rise/grids [N,7,7] (0/1), rise/shifts int32 [N,2] (dy, dx), rise/masks float32 [N,64,64]
    (exactly the masks used), rise/probs [2,N]
  sm/<method> [2,64,64]        methods lcam gradcam gradcampp gradcampp_paper scorecam rise
  sm_class3/<method> [64,64]   image 0, class 3
  adic/<method>/p<keep>/Y [2], O [2], AD [1], IC [1], and thresholded float32 [2,64,64] for
    keep 50 and 15 (exact: its values are float32; keep 100 zeroes nothing, the thresholded
    map is the map itself and is not stored)
  ties/<case>/map [2,64,64] and ties/<case>/p<keep>/... as adic, for the given maps const
    (all 0.5), zeros (all 0) and steps (8 levels of unequal counts in blocks; the script
    checks that both cuts fall inside a run of equal values).
Datasets of 16 KiB or more use the HDF5 shuffle + deflate filters (transparent to any reader
built with zlib); the files use the HDF5 1.10 format (libver v110: compact groups and
single-chunk indexes), readable by libhdf5 >= 1.10.

Omitted: GPU computation, real images and pretrained weights, the full RISE mask counts
(4000 / 8000; 64 here) and the mask cache file, RISE's original skimage resize (mode
"reflect" mirrors at the top/left border where bilinear clamps), batching, the
misclassification analysis, overlays and figures, top-1/top-5 accuracy, and L-CAM training
(the lcam_*.ref.h5 fixtures cover it).
"""

import argparse
import copy
import math
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
BATCH = 2
CLASS_SPECIFIC = 3
SEED_X = 5151
SEED_ATTN = 23
SEED_RISE = 707
RISE_N, RISE_S, RISE_P = 64, 7, 0.5
KEEPS = (100, 50, 15)
GRADCAMPP_EPS = 1e-7
COMPRESS_MIN_BYTES = 16384

METHODS = ("lcam", "gradcam", "gradcampp", "gradcampp_paper", "scorecam", "rise")
WEIGHTS = {"vgg16": "tiny_vgg16.weights.h5", "resnet50": "tiny_resnet50.weights.h5"}


def ascii_attr(s):
    return np.bytes_(s.encode("ascii"))


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------

def normalize(x):
    mean = torch.tensor(MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def features(model, arch, x):
    if arch == "vgg16":
        return model.features[:30](x)
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def head(model, arch, f):
    if arch == "vgg16":
        x = model.features[30:](f)
        return model.classifier(torch.flatten(model.avgpool(x), 1))
    return model.fc(torch.flatten(model.avgpool(f), 1))


def minmax(x):
    """Per-map (x - min) / (max - min) over the last two dims; zeros where max == min."""
    mn = x.amin(dim=(-2, -1), keepdim=True)
    mx = x.amax(dim=(-2, -1), keepdim=True)
    d = mx - mn
    return torch.where(d > 0, (x - mn) / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(x))


def upsample(m, size=IMAGE):
    """[..., h, w] -> [..., size, size], bilinear, align_corners=False."""
    lead = m.shape[:-2]
    y = F.interpolate(m.reshape(-1, 1, *m.shape[-2:]), size=(size, size), mode="bilinear", align_corners=False)
    return y.reshape(*lead, size, size)


def class_scores(model, x, cls, batch=64):
    """softmax(model(x))[i, cls[i]] in batches; x already normalized."""
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            p = F.softmax(model(x[i:i + batch]), dim=1)
            out.append(p.gather(1, cls[i:i + batch].view(-1, 1)).view(-1))
    return torch.cat(out)


# --------------------------------------------------------------------------
# Saliency maps
# --------------------------------------------------------------------------

def sm_lcam(A, W, b, cls):
    a = F.conv2d(A, W, b)                              # [N, K, h, w]
    c = a[torch.arange(A.shape[0]), cls]               # [N, h, w]
    return upsample(minmax(c)), dict(c=c)


def grad_of(model, arch, inp, cls, softmax):
    """A, the class logit or softmax score S [N], and d(score)/dA (images are independent)."""
    A = features(model, arch, inp).detach().requires_grad_(True)
    logits = head(model, arch, A)
    out = F.softmax(logits, dim=1) if softmax else logits
    score = out.gather(1, cls.view(-1, 1)).view(-1)
    g, = torch.autograd.grad(score.sum(), A)
    return A.detach(), score.detach(), g


def sm_gradcam(model, arch, inp, cls):
    A, _, g = grad_of(model, arch, inp, cls, softmax=False)
    w = g.mean(dim=(2, 3))
    cam = minmax(F.relu((w[:, :, None, None] * A).sum(1)))
    return upsample(cam), dict(grad=g, weights=w, cam=cam)


def sm_gradcampp(model, arch, inp, cls, paper=False):
    A, S, g = grad_of(model, arch, inp, cls, softmax=True)
    g2, g3 = g * g, g * g * g
    if paper:
        den = 2 * g2 + A.sum(dim=(2, 3), keepdim=True) * g3
    else:
        den = 2 * g2 + (A * g3).sum(dim=(2, 3), keepdim=True)
    den = torch.where(den != 0, den, torch.ones_like(den))
    alpha = g2 / (den + GRADCAMPP_EPS)
    w = (alpha * F.relu(S.exp()[:, None, None, None] * g)).sum(dim=(2, 3))
    cam = minmax(F.relu((w[:, :, None, None] * A).sum(1)))
    return upsample(cam), dict(score=S, grad=g, alpha=alpha, weights=w, cam=cam)


def sm_scorecam(model, arch, inp, cls):
    with torch.no_grad():
        A = features(model, arch, inp)
    n, C = A.shape[:2]
    U = upsample(F.relu(A))                                         # [N, C, H, W]
    r = U.amax(dim=(2, 3), keepdim=True) - U.amin(dim=(2, 3), keepdim=True)
    U = U / torch.where(r != 0, r, torch.ones_like(r))
    weights = torch.empty(n, C, dtype=A.dtype)
    for i in range(n):
        masked = inp[i:i + 1] * U[i][:, None]                       # [C, 3, H, W]
        weights[i] = class_scores(model, masked, cls[i].repeat(C))
    sm = minmax(F.relu((weights[:, :, None, None] * U).sum(1)))
    return sm, dict(weights=weights)


def make_rise():
    gen = torch.Generator().manual_seed(SEED_RISE)
    grids = (torch.rand(RISE_N, RISE_S, RISE_S, generator=gen, dtype=torch.float32) < RISE_P).to(torch.float64)
    cell = math.ceil(IMAGE / RISE_S)
    shifts = torch.randint(0, cell, (RISE_N, 2), generator=gen, dtype=torch.int64)
    up = upsample(grids, (RISE_S + 1) * cell)                      # [N, 80, 80]
    masks = torch.stack([up[i, dy:dy + IMAGE, dx:dx + IMAGE] for i, (dy, dx) in enumerate(shifts.tolist())])
    masks = masks.to(torch.float32).to(torch.float64)  # float32 masks, as the RISE code keeps them
    return dict(grids=grids, shifts=shifts, masks=masks, cell=cell, up=(RISE_S + 1) * cell)


def sm_rise(model, inp, cls, rise):
    masks = rise["masks"].to(inp.dtype)
    n = inp.shape[0]
    probs = torch.empty(n, RISE_N, dtype=inp.dtype)
    for i in range(n):
        probs[i] = class_scores(model, inp[i:i + 1] * masks[:, None], cls[i].repeat(RISE_N))
    sal = torch.einsum("nk,khw->nhw", probs, masks) / RISE_N / RISE_P
    return minmax(sal), dict(probs=probs)


def all_maps(model, arch, x01, cls, W, b, rise):
    """{method: (SM [N,H,W], details)} in the model's dtype."""
    dt = next(model.parameters()).dtype
    inp = normalize(x01.to(dt))
    with torch.no_grad():
        A = features(model, arch, inp)
    return {
        "lcam": sm_lcam(A, W.to(dt), b.to(dt), cls),
        "gradcam": sm_gradcam(model, arch, inp, cls),
        "gradcampp": sm_gradcampp(model, arch, inp, cls),
        "gradcampp_paper": sm_gradcampp(model, arch, inp, cls, paper=True),
        "scorecam": sm_scorecam(model, arch, inp, cls),
        "rise": sm_rise(model, inp, cls, rise),
    }


# --------------------------------------------------------------------------
# AD / IC
# --------------------------------------------------------------------------

def n_zeroed(keep, hw):
    return int((1 - keep / 100) * hw)


def threshold(m, keep):
    """Keep the top keep% of a [H, W] float64 array: zero the n_zeroed lowest (stable argsort)."""
    flat = m.reshape(-1).copy()
    z = n_zeroed(keep, flat.size)
    flat[np.argsort(flat, kind="stable")[:z]] = 0
    return flat.reshape(m.shape)


def official_drop(m, percent):
    """The official evaluation's drop_Npercent on one [H, W] map (percent = fraction dropped),
    rewritten as a cross-check of threshold(): kthvalue, zero what is below it, then zero the
    first surplus pixels equal to it in row-major order."""
    if percent == 0:
        return m.copy()
    hw = m.size
    flat = m.reshape(-1).copy()
    kth = np.sort(flat)[int(hw * percent) - 1]
    flat[flat < kth] = 0
    surplus = int(np.count_nonzero(flat > 0)) - math.ceil((1 - percent) * hw)
    if surplus >= 1:
        eq = np.flatnonzero(m.reshape(-1) == kth)
        flat[eq[:surplus]] = 0
    return flat.reshape(m.shape)


def adic(model, x01, cls, maps):
    """maps [N,H,W] float64 (float32-representable). Returns {keep: dict(thresholded, Y, O, AD, IC)}."""
    x = x01.double()
    Y = class_scores(model, normalize(x), cls)
    out = {}
    for keep in KEEPS:
        thr = np.stack([threshold(maps[i].numpy(), keep) for i in range(maps.shape[0])])
        for i in range(maps.shape[0]):
            ref = official_drop(maps[i].numpy(), 1 - keep / 100)
            if not np.array_equal(ref, thr[i]):
                raise RuntimeError(f"threshold keep {keep}: differs from the official rule on image {i}")
            if np.count_nonzero(thr[i] != maps[i].numpy()) > n_zeroed(keep, thr[i].size):
                raise RuntimeError("threshold changed more pixels than it zeroes")
        t = torch.from_numpy(thr)
        O = class_scores(model, normalize(x * t[:, None]), cls)
        n = Y.shape[0]
        AD = (torch.clamp(Y - O, min=0) / Y).sum() * 100.0 / n
        IC = (O > Y).sum().double() * 100.0 / n
        out[keep] = dict(thresholded=t, Y=Y, O=O, AD=AD.reshape(1), IC=IC.reshape(1))
    return out


def tie_maps():
    """Given maps for the tie/NaN cases: {case: [2, H, W] float64}."""
    const = torch.full((BATCH, IMAGE, IMAGE), 0.5, dtype=torch.float64)
    zeros = torch.zeros(BATCH, IMAGE, IMAGE, dtype=torch.float64)
    i = torch.arange(IMAGE).view(-1, 1)
    j = torch.arange(IMAGE).view(1, -1)
    lvl0 = ((i // 8) * 3 + (j // 16) * 5 + (i // 4) % 3) % 8      # 8 levels of unequal counts in
    lvl1 = ((j // 8) * 3 + (i // 16) * 5 + (j // 4) % 3 + 2) % 8  # blocks: long runs of ties
    steps = torch.stack([lvl0, lvl1]).to(torch.float64) / 7.0
    steps = steps.to(torch.float32).to(torch.float64)
    for n in range(BATCH):
        flat = steps[n].reshape(-1).numpy()
        srt = np.sort(flat)
        for keep in KEEPS[1:]:
            z = n_zeroed(keep, flat.size)
            cut = srt[z - 1]
            below, equal = np.count_nonzero(flat < cut), np.count_nonzero(flat == cut)
            if not (below < z < below + equal):
                raise RuntimeError(f"steps map {n}: keep {keep} does not cut inside a tie run")
    return {"const": const, "zeros": zeros, "steps": steps}


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def make_x01():
    gen = torch.Generator().manual_seed(SEED_X)
    u = torch.rand(BATCH, 3, IMAGE, IMAGE, generator=gen, dtype=torch.float32)
    u[1] *= 0.5  # a darker second image, so that the tiny VGG predicts another class for it
    # 8-bit levels k / 255 in float32, as ToTensor() gives for a decoded image
    return torch.round(u * 255).to(torch.uint8).to(torch.float32) / 255


def init_attention(channels):
    """nn.Conv2d's default init (uniform(+-1/sqrt(C)) for weight and bias), float32."""
    torch.manual_seed(SEED_ATTN)
    conv = nn.Conv2d(channels, K, kernel_size=1)
    return conv.weight.detach().clone(), conv.bias.detach().clone()


CONVENTIONS = {
    "minmax": "(x - min) / (max - min) per map; all zeros where max == min",
    "upsample": "bilinear, align_corners=False",
    "gradcampp_score": "softmax probability S of the class; g = dS/dA; weights use relu(exp(S) * g)",
    "gradcampp_alpha": "g^2 / (where(D != 0, D, 1) + 1e-7), D = 2 g^2 + sum_ab(A * g^3)",
    "gradcampp_paper_alpha": "g^2 / (where(D != 0, D, 1) + 1e-7), D = 2 g^2 + sum_ab(A) * g^3",
    "scorecam": "U = up(relu(A)) / range (1 where 0), masks the normalized image, "
                "SM = minmax(relu(sum_k softmax_k U_k)) at input resolution",
    "rise": "grids = rand < p (generator SEED_RISE, before the shifts), up to (s+1)*ceil(H/s), "
            "crop at (dy, dx) = shifts; masks multiply the normalized image; SM = minmax(sum p_i M_i / (N p))",
    "adic_map": "the SM rounded to float32",
    "adic_threshold": "zero the first int((1 - keep/100) * H * W) pixels of a stable ascending argsort "
                      "of the row-major map; the rest keep their values",
}


def open_h5_for_writing(path):
    """A new HDF5 file in the 1.10 format that records no object times (reproducible bytes)."""
    import h5py

    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fid = h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl)
    return h5py.File(fid)


def ensure_group(f, path):
    """Create the groups of `path` (a/b/c) that are missing, without object times."""
    import h5py

    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    node = f
    for part in path.split("/"):
        if part not in node:
            h5py.h5g.create(node.id, part.encode("ascii"), gcpl=gcpl)
        node = node[part]


def write_arch(arch, m32, m64, x01, outdir):
    dt64 = torch.float64
    with torch.no_grad():
        A64 = features(m64, arch, normalize(x01.double()))
        logits = head(m64, arch, A64)
    probs = F.softmax(logits, dim=1)
    cls = logits.argmax(dim=1)
    if int(cls[0]) == CLASS_SPECIFIC:
        raise RuntimeError(f"{arch}: image 0's top-1 class is {CLASS_SPECIFIC}; pick another class or seed")
    cls3 = torch.tensor([CLASS_SPECIFIC])
    W0, b0 = init_attention(A64.shape[1])
    rise = make_rise()

    r64 = all_maps(m64, arch, x01, cls, W0, b0, rise)
    r32 = all_maps(m32, arch, x01, cls, W0, b0, rise)
    c64 = all_maps(m64, arch, x01[:1], cls3, W0, b0, rise)
    c32 = all_maps(m32, arch, x01[:1], cls3, W0, b0, rise)
    floors = {}
    for m in METHODS:
        a = (r32[m][0].double() - r64[m][0]).abs().max().item()
        c = (c32[m][0].double() - c64[m][0]).abs().max().item()
        floors[m] = max(a, c)
    for m in METHODS:
        for sm in (r64[m][0], c64[m][0]):
            if not torch.isfinite(sm).all() or sm.min() < 0 or sm.max() > 1:
                raise RuntimeError(f"{arch} {m}: SM outside [0, 1] or not finite")

    adic_res = {m: adic(m64, x01, cls, r64[m][0].to(torch.float32).to(dt64)) for m in METHODS}
    ties = tie_maps()
    tie_res = {k: adic(m64, x01, cls, v) for k, v in ties.items()}

    path = os.path.join(outdir, f"cam_{arch}.ref.h5")
    tmp = path + ".tmp"
    hw = IMAGE * IMAGE
    try:
        with open_h5_for_writing(tmp) as f:
            a = f.attrs
            a["magic"] = ascii_attr(MAGIC)
            a["version"] = np.int32(VERSION)
            a["kind"] = ascii_attr("cam")
            a["arch"] = ascii_attr(arch)
            a["weights"] = ascii_attr(WEIGHTS[arch])
            a["image_size"] = np.int32(IMAGE)
            a["num_classes"] = np.int32(K)
            a["seed_x"] = np.int32(SEED_X)
            a["seed_attn"] = np.int32(SEED_ATTN)
            a["seed_rise"] = np.int32(SEED_RISE)
            a["rise_n"] = np.int32(RISE_N)
            a["rise_s"] = np.int32(RISE_S)
            a["rise_p"] = np.float64(RISE_P)
            a["rise_cell"] = np.int32(rise["cell"])
            a["rise_up"] = np.int32(rise["up"])
            a["class_specific"] = np.int32(CLASS_SPECIFIC)
            a["gradcampp_eps"] = np.float64(GRADCAMPP_EPS)
            a["keep_percents"] = np.asarray(KEEPS, dtype=np.int32)
            a["n_zeroed"] = np.asarray([n_zeroed(k, hw) for k in KEEPS], dtype=np.int32)
            a["methods"] = ascii_attr(",".join(METHODS))
            for k, v in CONVENTIONS.items():
                a[k] = ascii_attr(v)
            for k, v in floors.items():
                a[f"f32_abs_sm_{k}"] = np.float64(v)

            def put(key, t, dtype=np.float64):
                parent = key.rpartition("/")[0]
                if parent:
                    ensure_group(f, parent)
                arr = t.detach().numpy() if torch.is_tensor(t) else np.asarray(t)
                arr = np.ascontiguousarray(arr.astype(dtype))
                if arr.nbytes < COMPRESS_MIN_BYTES:
                    f.create_dataset(key, data=arr, dtype=dtype, track_times=False)
                else:  # one chunk: no per-chunk index overhead
                    f.create_dataset(key, data=arr, dtype=dtype, chunks=arr.shape, shuffle=True,
                                     compression="gzip", compression_opts=9, track_times=False)

            put("x01", x01.double())
            put("classes", cls, np.int32)
            put("class3", cls3, np.int32)
            put("logits", logits)
            put("probs", probs)
            put("features", A64)
            put("lcam/attn_weight", W0.double())
            put("lcam/attn_bias", b0.double())
            put("lcam/c", r64["lcam"][1]["c"])
            for k in ("grad", "weights", "cam"):
                put(f"gradcam/{k}", r64["gradcam"][1][k])
            for k in ("score", "grad", "alpha", "weights", "cam"):
                put(f"gradcampp/{k}", r64["gradcampp"][1][k])
            for k in ("alpha", "weights", "cam"):
                put(f"gradcampp_paper/{k}", r64["gradcampp_paper"][1][k])
            put("scorecam/weights", r64["scorecam"][1]["weights"])
            put("rise/grids", rise["grids"])
            put("rise/shifts", rise["shifts"], np.int32)
            put("rise/masks", rise["masks"], np.float32)
            put("rise/probs", r64["rise"][1]["probs"])
            for m in METHODS:
                put(f"sm/{m}", r64[m][0])
                put(f"sm_class3/{m}", c64[m][0][0])
            for group, res in (("adic", adic_res), ("ties", tie_res)):
                for name, per_keep in res.items():
                    if group == "ties":
                        put(f"ties/{name}/map", ties[name])
                    for keep, r in per_keep.items():
                        if n_zeroed(keep, hw) > 0:  # keep 100: the map itself
                            put(f"{group}/{name}/p{keep}/thresholded", r["thresholded"], np.float32)
                        for k in ("Y", "O", "AD", "IC"):
                            put(f"{group}/{name}/p{keep}/{k}", r[k])
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

    print(f"{arch}: A {tuple(A64.shape)}, classes {cls.tolist()} (p {probs.max(1)[0].tolist()}), class-specific "
          f"{CLASS_SPECIFIC} on image 0")
    print("  float32 vs float64 SM (max|diff|):" + "".join(f" {k} {v:.1e}" for k, v in floors.items()))
    for m in METHODS:
        print(f"  {m:16s}" + "".join(f" p{k}: AD {r['AD'].item():7.3f} IC {r['IC'].item():5.1f}"
                                     for k, r in adic_res[m].items()))
    for name in ties:
        print(f"  ties/{name:10s}" + "".join(f" p{k}: AD {r['AD'].item():7.3f} IC {r['IC'].item():5.1f}"
                                            for k, r in tie_res[name].items()))
    return path


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    fixtures = os.path.join(here, "..", "tests", "fixtures")
    p.add_argument("--outdir", default=fixtures)
    p.add_argument("--weights-dir", default=fixtures, help="where the tiny_*.weights.h5 files are")
    p.add_argument("--archs", nargs="*", default=list(WEIGHTS), choices=list(WEIGHTS))
    args = p.parse_args(argv)
    outdir = os.path.normpath(args.outdir)
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(min(4, torch.get_num_threads()))

    x01 = make_x01()
    written = []
    for arch in args.archs:
        m32 = et.model_from_weights(os.path.join(args.weights_dir, WEIGHTS[arch])).eval()
        for prm in m32.parameters():
            prm.requires_grad_(False)
        m64 = copy.deepcopy(m32).double().eval()
        written.append(write_arch(arch, m32, m64, x01, outdir))

    et.print_sizes(written, os.path.join(here, ".."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
