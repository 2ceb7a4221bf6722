#!/usr/bin/env python3
"""Write the committed PyTorch-file fixtures in tests/fixtures/pth/ with torch.save.

lcam reads torch.save files (`--weights X.pth`, `--lcam X.pth`) without Python; these files
are what its tests read them against. Outputs:

  zoo.pth, zoo.p4.pth,   one dict of odd tensors and non-tensor values, saved in the zip
  zoo.legacy.pth         format (pickle protocol 2 and 4) and in the legacy format
                         (_use_new_zipfile_serialization=False): float32/float64/float16/
                         bfloat16/int64/int32/uint8/bool tensors, a 0-dim one, a transposed
                         (non-contiguous) one, two views into one storage at offsets, an
                         expanded (stride 0) one, a Parameter, nested dicts, a list and a
                         tuple of tensors, ints, floats, strings, None, an argparse.Namespace
                         (an object lcam must skip, not run).
  zoo.ref.h5             what lcam must read from them: one float32 dataset per tensor,
                         named by its flattened key path ("nested.inner.w", "list.1"), the
                         value as torch's .float() gives it (int64 exactly as float64 under
                         "int/NAME" too); attributes int_NAME / float_NAME / str_NAME for
                         the scalar entries.
  zoo.torch2.pth         the same dict in the zip format of a torch 2.x (its records aligned
                         to 64 bytes, .storage_alignment, byteorder): written with --torch2
                         only, by a torch 2.x (the committed one by torch 2.15.0), without
                         touching the other files; zoo.ref.h5 holds for it too (the zoo's
                         values do not depend on the torch version; checked when it is written).
  tiny_vgg16.legacy.pth  tests/fixtures/tiny_vgg16.weights.h5 as a plain state_dict
                         (OrderedDict), legacy format.
  tiny_resnet50.ckpt.pth tests/fixtures/tiny_resnet50.weights.h5 as the ImageNet example
                         writes a checkpoint: {"epoch", "arch", "state_dict" with "module."
                         keys and num_batches_tracked, "best_acc1", "optimizer"}, zip format.
  tiny_vgg16_lcam.pth    a whole L-CAM model's state_dict under "state_dict" (backbone with
                         "module." keys and the attention "module.attnM.op.weight"/"bias"
                         [10,32,1,1]/[10]), zip format; the attention also goes to
                         tiny_vgg16_lcam.ref.h5 (attnM.op.weight, attnM.op.bias).

Run: /usr/bin/python3 tools/make_pth_fixtures.py [--out tests/fixtures/pth]
     PYTHON_WITH_TORCH2 tools/make_pth_fixtures.py --torch2
"""

import argparse
import collections
import os

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")


def zoo():
    g = torch.Generator().manual_seed(20261202)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    base = randn(5, 4)
    shared = randn(12)
    z = collections.OrderedDict()
    z["f32"] = randn(2, 3)
    z["f64"] = randn(3, 2).double() * 1.000000123  # not float32-representable
    z["f16"] = randn(4).half()
    z["bf16"] = randn(2, 2).bfloat16()
    z["i64"] = torch.tensor([-3, 0, 7, 2**40], dtype=torch.int64)
    z["i32"] = torch.tensor([[1, -2], [3, 4]], dtype=torch.int32)
    z["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    z["flag"] = torch.tensor([True, False, True])
    z["scalar"] = torch.tensor(2.5)
    z["transposed"] = base.t()                    # stride (1, 4)
    z["view_a"] = shared[2:8].view(2, 3)          # offset 2 into a storage of 12
    z["view_b"] = shared[5:]                      # the same storage, offset 5
    z["expanded"] = randn(3, 1).expand(3, 4)      # stride (1, 0)
    z["param"] = torch.nn.Parameter(randn(3))
    z["nested"] = {"inner": {"w": randn(2, 2, 1, 1)}, "k": 3}
    z["list"] = [randn(2), randn(1, 3)]
    z["tuple"] = (randn(2), "x")
    z["epoch"] = 12
    z["big"] = 2**62 + 5
    z["neg"] = -70000
    z["lr"] = 0.125
    z["name"] = "vgg16 \u00e9"
    z["nothing"] = None
    z["yes"] = True
    z["args"] = argparse.Namespace(lr=0.1, arch="vgg16", sizes=[1, 2])
    return z


def flatten(obj, prefix, out_t, out_s):
    if isinstance(obj, torch.Tensor):
        out_t[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out_t, out_s)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}", out_t, out_s)
    elif isinstance(obj, (bool, int, float, str)):
        out_s[prefix] = obj


def write_zoo(out):
    z = zoo()
    torch.save(z, os.path.join(out, "zoo.pth"))
    torch.save(z, os.path.join(out, "zoo.p4.pth"), pickle_protocol=4)
    torch.save(z, os.path.join(out, "zoo.legacy.pth"), _use_new_zipfile_serialization=False)
    tensors, scalars = {}, {}
    flatten(z, "", tensors, scalars)
    with h5py.File(os.path.join(out, "zoo.ref.h5"), "w") as f:
        for name, t in tensors.items():
            f[name] = t.detach().float().numpy()
            if not t.dtype.is_floating_point:
                f["int/" + name] = t.detach().double().numpy()
        for name, v in scalars.items():
            if isinstance(v, bool):
                f.attrs["int_" + name] = int(v)
            elif isinstance(v, int):
                f.attrs["int_" + name] = np.int64(v)
            elif isinstance(v, float):
                f.attrs["float_" + name] = v
            else:
                f.attrs["str_" + name] = v


def write_zoo_torch2(out):
    if int(torch.__version__.split(".")[0]) < 2:
        raise SystemExit(f"--torch2 needs a torch 2.x, this is {torch.__version__}")
    z = zoo()
    tensors, scalars = {}, {}
    flatten(z, "", tensors, scalars)
    with h5py.File(os.path.join(out, "zoo.ref.h5"), "r") as f:
        for name, t in tensors.items():
            if not np.array_equal(f[name][()], t.detach().float().numpy()):
                raise SystemExit(f"zoo.ref.h5 does not hold for this torch's zoo: {name} differs")
    torch.save(z, os.path.join(out, "zoo.torch2.pth"))


def read_weights(name):
    with h5py.File(os.path.join(FIXTURES, name), "r") as f:
        sd = collections.OrderedDict()
        for k in f.keys():
            sd[k] = torch.from_numpy(f[k][()])
    return sd


def write_models(out):
    vgg = read_weights("tiny_vgg16.weights.h5")
    torch.save(vgg, os.path.join(out, "tiny_vgg16.legacy.pth"), _use_new_zipfile_serialization=False)

    res = read_weights("tiny_resnet50.weights.h5")
    sd = collections.OrderedDict()
    for k, v in res.items():
        sd["module." + k] = v
        if k.endswith("running_var"):
            sd["module." + k[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(1000, dtype=torch.int64)
    momentum = {i: {"momentum_buffer": torch.zeros(2)} for i in range(2)}
    ckpt = {"epoch": 7, "arch": "resnet50", "state_dict": sd, "best_acc1": torch.tensor(51.25),
            "optimizer": {"state": momentum, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}}
    torch.save(ckpt, os.path.join(out, "tiny_resnet50.ckpt.pth"))

    g = torch.Generator().manual_seed(7)
    w = torch.randn(10, 32, 1, 1, generator=g) * 0.1
    b = torch.randn(10, generator=g) * 0.1
    full = collections.OrderedDict(("module." + k, v) for k, v in vgg.items())
    full["module.attnM.op.weight"] = w
    full["module.attnM.op.bias"] = b
    torch.save({"epoch": 3, "state_dict": full}, os.path.join(out, "tiny_vgg16_lcam.pth"))
    with h5py.File(os.path.join(out, "tiny_vgg16_lcam.ref.h5"), "w") as f:
        f["attnM.op.weight"] = w.numpy()
        f["attnM.op.bias"] = b.numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(FIXTURES, "pth"))
    ap.add_argument("--torch2", action="store_true", help="write zoo.torch2.pth only (needs a torch 2.x)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.torch2:
        write_zoo_torch2(a.out)
    else:
        write_zoo(a.out)
        write_models(a.out)
    for n in sorted(os.listdir(a.out)):
        print(f"{os.path.getsize(os.path.join(a.out, n)):9d} {n}")


if __name__ == "__main__":
    main()
