#!/usr/bin/env python3
"""Writes the first N items of Fashion-MNIST's train split and the first M of its test split
as IDX files (gzipped, the same format and names), for a machine without the dataset: the
GPU bundle carries one so that `lcam demo --fashion-mnist DIR` and the learning test run there.
Scenes drawn from a subset differ from the full set's (each scene picks its item modulo the
split's size) but are as reproducible.

usage: fashion_subset.py OUT_DIR [--source DIR] [--train N] [--test M]
"""
import argparse
import gzip
import os
import struct
import sys


def subset(src, dst, n):
    with gzip.open(src, "rb") if src.endswith(".gz") else open(src, "rb") as f:
        head = f.read(4)
        if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] != 8:
            sys.exit(f"fashion_subset: {src}: not an unsigned-byte IDX file")
        ndim = head[3]
        dims = list(struct.unpack(f">{ndim}I", f.read(4 * ndim)))
        n = min(n, dims[0])
        per = 1
        for d in dims[1:]:
            per *= d
        data = f.read(n * per)
        if len(data) != n * per:
            sys.exit(f"fashion_subset: {src}: truncated")
    dims[0] = n
    tmp = dst + ".tmp"
    with gzip.open(tmp, "wb", compresslevel=9) as g:
        g.write(head + struct.pack(f">{ndim}I", *dims) + data)
    os.replace(tmp, dst)
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--train", type=int, default=6000)
    p.add_argument("--test", type=int, default=2000)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for stem, n in (("train", a.train), ("t10k", a.test)):
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{stem}-{kind}-ubyte"
            src = os.path.join(a.source, name + ".gz")
            if not os.path.exists(src):
                src = os.path.join(a.source, name)
            if not os.path.exists(src):
                sys.exit(f"fashion_subset: {src}[.gz]: not found (apt-get install dataset-fashion-mnist)")
            got = subset(src, os.path.join(a.out, name + ".gz"), n)
        print(f"fashion_subset: {stem}: {got} items -> {a.out}")


if __name__ == "__main__":
    main()
