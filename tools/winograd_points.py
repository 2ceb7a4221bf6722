#!/usr/bin/env python3
"""Float32 error of Winograd F(m x m, 3x3) for several sets of interpolation points.

Builds B^T, G and A^T exactly (fractions) from the points by the Toom-Cook construction (the
point at infinity last), checks in float64 that they reproduce the direct convolution, then
runs the three transforms and the products in float32 (each step rounded to float32, as
engine/cpu_ops.cpp does; G g G^T in float64 and rounded once, as there) on a ReLU'd random
input of C channels and He-scaled random weights, and prints the error against the float64
direct convolution: the largest absolute error over the largest |output|, and the rms error over
the rms output. engine/cpu_ops.cpp's F(4x4) uses the most accurate set printed here.

    /usr/bin/python3 tools/winograd_points.py [--channels 256] [--size 30] [--seed 1]
"""
import argparse
from fractions import Fraction as Fr

import numpy as np


def polymul(a, b):
    r = [Fr(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            r[i + j] += x * y
    return r


def matrices(points, m, r=3):
    """B^T (n x n), G (n x r), A^T (m x n) of F(m, r) for the n - 1 finite points and infinity."""
    n = m + r - 1
    pts = [Fr(p) for p in points]
    assert len(pts) == n - 1
    at = [[p ** i for p in pts] + [Fr(int(i == m - 1))] for i in range(m)]
    g = []
    for j, p in enumerate(pts):
        f = Fr(1)
        for q in pts[:j] + pts[j + 1:]:
            f *= p - q
        g.append([p ** k / f for k in range(r)])
    g.append([Fr(0)] * (r - 1) + [Fr(1)])
    bt = []
    for j in range(len(pts)):
        mj = [Fr(1)]
        for q in pts[:j] + pts[j + 1:]:
            mj = polymul(mj, [-q, Fr(1)])
        bt.append(mj + [Fr(0)] * (n - len(mj)))
    full = [Fr(1)]
    for q in pts:
        full = polymul(full, [-q, Fr(1)])
    bt.append(full)
    as_float = lambda rows: np.array([[float(v) for v in row] for row in rows])
    return as_float(bt), as_float(g), as_float(at)


def winograd(x, w, bt, g, at, m, dt):
    """Valid 3x3 convolution of x [C,H,W] with w [K,C,3,3] in F(m, 3) tiles, arithmetic in dt."""
    c, h, wd = x.shape
    k = w.shape[0]
    a = m + 2
    p, q = h - 2, wd - 2
    tp, tq = (p + m - 1) // m, (q + m - 1) // m
    xp = np.zeros((c, tp * m + 2, tq * m + 2), dt)
    xp[:, :h, :wd] = x
    u = np.einsum("ij,kcjl,ml->imkc", g, w.astype(np.float64), g).astype(dt)  # rounded once
    tiles = np.stack([xp[:, ty * m:ty * m + a, tx * m:tx * m + a] for ty in range(tp) for tx in range(tq)], -1)
    v = np.einsum("ij,cjlt->cilt", bt.astype(dt), tiles).astype(dt)
    v = np.einsum("cilt,ml->imct", v, bt.astype(dt)).astype(dt)
    mm = np.einsum("ijkc,ijct->ijkt", u, v).astype(dt)
    y = np.einsum("ri,ijkt->rjkt", at.astype(dt), mm).astype(dt)
    y = np.einsum("rjkt,sj->krst", y, at.astype(dt)).astype(dt)
    y = y.reshape(k, m, m, tp, tq).transpose(0, 3, 1, 4, 2).reshape(k, tp * m, tq * m)
    return y[:, :p, :q]


def direct(x, w):
    c, h, wd = x.shape
    out = np.zeros((w.shape[0], h - 2, wd - 2))
    for r in range(3):
        for s in range(3):
            out += np.einsum("kc,chw->khw", w[:, :, r, s], x[:, r:r + h - 2, s:s + wd - 2])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--size", type=int, default=30, help="input height and width (output: size - 2)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    c = args.channels
    x = np.maximum(rng.standard_normal((c, args.size, args.size)), 0)
    w = rng.standard_normal((c, c, 3, 3)) * np.sqrt(2 / (9 * c))
    ref = direct(x, w)
    sets = [(2, (0, 1, -1)), (4, (0, 1, -1, 2, -2)), (4, (0, 1, -1, Fr(1, 2), -2)),
            (4, (0, 1, -1, Fr(1, 2), Fr(-1, 2))), (4, (0, 1, -1, 2, Fr(-1, 2)))]
    for m, pts in sets:
        bt, g, at = matrices(pts, m)
        exact = winograd(x, w, bt, g, at, m, np.float64)
        assert np.abs(exact - ref).max() <= 1e-9 * np.abs(ref).max(), pts
        d = winograd(x.astype(np.float32), w, bt, g, at, m, np.float32) - ref
        name = ", ".join(str(p) for p in pts) + ", inf"
        print(f"F({m}x{m},3x3) points {name:28s} max {np.abs(d).max() / np.abs(ref).max():.2e}"
              f"  rms {np.sqrt((d ** 2).mean() / (ref ** 2).mean()):.2e}")


if __name__ == "__main__":
    main()
