#!/usr/bin/env python3
"""Export a torchvision VGG-16 or ResNet-50 to lcam's backbone weights HDF5 file.

File layout (see docs/ARCHITECTURE.md, "File formats"):
  * one float32 dataset per state_dict entry at the root, named exactly as the
    key (`features.0.weight`, `layer1.0.bn1.running_var`, `fc.weight`, ...);
    `*.num_batches_tracked` (int64 training counters) are skipped;
  * root attribute `arch`: "vgg16" | "resnet50" (fixed-length ASCII string);
  * VGG: attributes `cfg` (int32 array, -1 marks a 2x2 max-pool),
    `hidden` (int32) and `num_classes` (int32);
  * ResNet: attributes `width` (int32, 64 for the standard model),
    `blocks` (int32 array) and `num_classes` (int32).
  The configuration attributes are always written, also for the standard
  models, so a reader never has to guess.

Weights come from torchvision's IMAGENET1K_V1 release (`--pretrained`, needs
network access or a populated torch hub cache), from a local state_dict file
(`--state-dict FILE.pth`), or from torchvision's own default initialization
after torch.manual_seed(S) (`--random-init --seed S`). With random init the
BatchNorm statistics and affine parameters are randomized as well (unless
`--no-randomize-bn`) so that a consumer that folds BatchNorm into the
convolutions is actually exercised: running_mean ~ N(0, 0.1),
running_var ~ U(0.5, 1.5), weight ~ U(0.5, 1.5), bias ~ N(0, 0.1).

The module also serves as a small library (imported by make_fixtures.py and
parity_full.py): `build_vgg` and `build_resnet` construct reduced-size
variants of the same architectures with torchvision's module names, and
`write_weights` writes any of them in the format above.

Omitted: batch-norm VGG variants (vgg16_bn), other depths (ResNet-18/34/101),
weights other than IMAGENET1K_V1, and any compression or chunking of the
datasets (the files are read whole by lcam).
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.models.vgg import VGG, make_layers

ARCHS = ("vgg16", "resnet50")

# torchvision's configuration "D" (VGG-16) with -1 standing for 'M'.
STANDARD_VGG16_CFG = [64, 64, -1, 128, 128, -1, 256, 256, 256, -1,
                      512, 512, 512, -1, 512, 512, 512, -1]
STANDARD_VGG16_HIDDEN = 4096
STANDARD_RESNET50_WIDTH = 64
STANDARD_RESNET50_BLOCKS = [3, 4, 6, 3]
IMAGENET_CLASSES = 1000


# --------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------

class ConfigurableVGG(VGG):
    """torchvision VGG with a configurable classifier width.

    Same module names as torchvision (features.N, avgpool, classifier.0/3/6),
    same construction order and the same initialization loop as
    torchvision's VGG.__init__, so with the standard configuration and the
    same seed it reproduces torchvision.models.vgg16() bit for bit. The forward
    pass is torchvision's (inherited).
    """

    def __init__(self, cfg, hidden, num_classes, dropout=0.5):
        nn.Module.__init__(self)
        layer_cfg = ["M" if v == -1 else int(v) for v in cfg]
        widths = [v for v in layer_cfg if v != "M"]
        if not widths:
            raise ValueError("VGG cfg has no convolution")
        self.features = make_layers(layer_cfg, batch_norm=False)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(widths[-1] * 7 * 7, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)
        self.lcam_cfg = [int(v) for v in cfg]
        self.lcam_hidden = int(hidden)
        self.lcam_num_classes = int(num_classes)


class ConfigurableResNet(ResNet):
    """torchvision ResNet (Bottleneck blocks) with base width `width` instead of 64.

    Stages have planes width, 2*width, 4*width, 8*width (outputs 4x that),
    torchvision's module names (conv1, bn1, relu, maxpool, layer1..4, avgpool,
    fc), torchvision's v1.5 stride placement (on the 3x3 conv2 of the first
    block of a stage, and on the 1x1 downsample conv) and torchvision's
    initialization. With width 64 and blocks [3, 4, 6, 3] it reproduces
    torchvision.models.resnet50() bit for bit for the same seed. Forward pass
    and _make_layer are torchvision's (inherited).
    """

    def __init__(self, width, blocks, num_classes):
        nn.Module.__init__(self)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError("ResNet blocks must be four positive counts")
        norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # Bottleneck inner width == planes
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, width, blocks[0])
        self.layer2 = self._make_layer(Bottleneck, 2 * width, blocks[1], stride=2)
        self.layer3 = self._make_layer(Bottleneck, 4 * width, blocks[2], stride=2)
        self.layer4 = self._make_layer(Bottleneck, 8 * width, blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * Bottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        self.lcam_width = int(width)
        self.lcam_blocks = [int(b) for b in blocks]
        self.lcam_num_classes = int(num_classes)


def _tag_standard_vgg(model, num_classes=IMAGENET_CLASSES):
    model.lcam_cfg = list(STANDARD_VGG16_CFG)
    model.lcam_hidden = STANDARD_VGG16_HIDDEN
    model.lcam_num_classes = num_classes
    return model


def _tag_standard_resnet(model, num_classes=IMAGENET_CLASSES):
    model.lcam_width = STANDARD_RESNET50_WIDTH
    model.lcam_blocks = list(STANDARD_RESNET50_BLOCKS)
    model.lcam_num_classes = num_classes
    return model


def build_vgg(cfg=None, hidden=STANDARD_VGG16_HIDDEN, num_classes=IMAGENET_CLASSES):
    """VGG with torchvision names; the standard VGG-16 comes from torchvision itself."""
    cfg = list(STANDARD_VGG16_CFG if cfg is None else cfg)
    if (cfg == STANDARD_VGG16_CFG and hidden == STANDARD_VGG16_HIDDEN
            and num_classes == IMAGENET_CLASSES):
        return _tag_standard_vgg(torchvision.models.vgg16(weights=None))
    return ConfigurableVGG(cfg, hidden, num_classes)


def build_resnet(width=STANDARD_RESNET50_WIDTH, blocks=None, num_classes=IMAGENET_CLASSES):
    """Bottleneck ResNet with torchvision names; the standard ResNet-50 comes from torchvision."""
    blocks = list(STANDARD_RESNET50_BLOCKS if blocks is None else blocks)
    if (width == STANDARD_RESNET50_WIDTH and blocks == STANDARD_RESNET50_BLOCKS
            and num_classes == IMAGENET_CLASSES):
        return _tag_standard_resnet(torchvision.models.resnet50(weights=None))
    return ConfigurableResNet(width, blocks, num_classes)


def build_model(arch, **config):
    if arch == "vgg16":
        return build_vgg(**config)
    if arch == "resnet50":
        return build_resnet(**config)
    raise ValueError(f"unknown arch {arch!r} (expected one of {ARCHS})")


def arch_of(model):
    if hasattr(model, "lcam_cfg"):
        return "vgg16"
    if hasattr(model, "lcam_width"):
        return "resnet50"
    raise ValueError("model was not built by build_vgg/build_resnet")


@torch.no_grad()
def randomize_bn(model, generator=None):
    """Randomize every BatchNorm2d's statistics and affine parameters in place.

    running_mean ~ N(0, 0.1), running_var ~ U(0.5, 1.5),
    weight ~ U(0.5, 1.5), bias ~ N(0, 0.1). Uses the global torch RNG unless a
    generator is given. Returns the number of BatchNorm layers touched.
    """
    count = 0
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            dt = m.running_mean.dtype
            m.running_mean.copy_(torch.randn(n, generator=generator, dtype=dt) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=generator, dtype=dt) + 0.5)
            m.weight.copy_(torch.rand(n, generator=generator, dtype=dt) + 0.5)
            m.bias.copy_(torch.randn(n, generator=generator, dtype=dt) * 0.1)
            count += 1
    return count


def load_pretrained(arch):
    """torchvision's IMAGENET1K_V1 weights (downloads into the torch hub cache)."""
    if arch == "vgg16":
        model = torchvision.models.vgg16(weights="IMAGENET1K_V1")
        return _tag_standard_vgg(model)
    model = torchvision.models.resnet50(weights="IMAGENET1K_V1")
    return _tag_standard_resnet(model)


def load_state_dict_file(arch, path):
    state = torch.load(path, map_location="cpu")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = build_model(arch)
    model.load_state_dict(state)
    return model


# --------------------------------------------------------------------------
# HDF5 output
# --------------------------------------------------------------------------

def _ascii_attr(value):
    return np.bytes_(value.encode("ascii"))


def config_attrs(model):
    """Root attributes describing the model's configuration."""
    arch = arch_of(model)
    attrs = {"arch": _ascii_attr(arch)}
    if arch == "vgg16":
        attrs["cfg"] = np.asarray(model.lcam_cfg, dtype=np.int32)
        attrs["hidden"] = np.int32(model.lcam_hidden)
    else:
        attrs["width"] = np.int32(model.lcam_width)
        attrs["blocks"] = np.asarray(model.lcam_blocks, dtype=np.int32)
    attrs["num_classes"] = np.int32(model.lcam_num_classes)
    return attrs


def weight_arrays(model):
    """state_dict as {key: float32 C-contiguous numpy array}, without num_batches_tracked."""
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if not value.is_floating_point():
            raise ValueError(f"unexpected non-float state_dict entry {key} ({value.dtype})")
        out[key] = np.ascontiguousarray(value.detach().cpu().to(torch.float32).numpy())
    return out


def write_weights(model, out_path):
    """Write the model in lcam's weights format (to OUT.tmp, then renamed)."""
    import h5py

    tmp = out_path + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in config_attrs(model).items():
                f.attrs[key] = value
            for key, arr in weight_arrays(model).items():
                f.create_dataset(key, data=arr, dtype=np.float32)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return out_path


def read_weights_into(model, path):
    """Load a weights file written by write_weights back into a model (strict on names)."""
    import h5py

    with h5py.File(path, "r") as f:
        state = {k: torch.from_numpy(np.asarray(f[k])) for k in f.keys()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def model_from_weights(path):
    """Build the model a weights file describes (arch + configuration attributes) and load it."""
    import h5py

    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
    arch = attrs.get("arch")
    if isinstance(arch, bytes):
        arch = arch.decode("ascii")
    if arch not in ARCHS:
        raise ValueError(f"{path}: root attribute arch is {arch!r}, expected one of {ARCHS}")
    config = {}
    if "num_classes" in attrs:
        config["num_classes"] = int(attrs["num_classes"])
    if arch == "vgg16":
        if "cfg" in attrs:
            config["cfg"] = [int(v) for v in attrs["cfg"]]
        if "hidden" in attrs:
            config["hidden"] = int(attrs["hidden"])
    else:
        if "width" in attrs:
            config["width"] = int(attrs["width"])
        if "blocks" in attrs:
            config["blocks"] = [int(v) for v in attrs["blocks"]]
    return read_weights_into(build_model(arch, **config), path).eval()


def random_model(arch, seed, randomize_batchnorm=True, **config):
    """torchvision default init after torch.manual_seed(seed), plus optional BN randomization."""
    torch.manual_seed(seed)
    model = build_model(arch, **config)
    if randomize_batchnorm:
        randomize_bn(model)
    return model.eval()


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def print_sizes(paths, root):
    """Prints each written file's size relative to root and the total (used by the fixture scripts)."""
    total = 0
    print("files:")
    for path in paths:
        size = os.path.getsize(path)
        total += size
        print(f"  {os.path.relpath(path, root)}: {size / 1024:.1f} KiB")
    print(f"  total: {total / 2**20:.2f} MiB")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("--out", required=True, help="output HDF5 path")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pretrained", action="store_true",
                     help="torchvision IMAGENET1K_V1 weights (needs network or hub cache)")
    src.add_argument("--state-dict", metavar="FILE.pth",
                     help="a local torchvision state_dict file")
    src.add_argument("--random-init", action="store_true",
                     help="torchvision default init after torch.manual_seed(--seed)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-init (default 0)")
    p.add_argument("--randomize-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="with --random-init, randomize BatchNorm stats/affine (default: on)")
    args = p.parse_args(argv)

    if args.randomize_bn and not args.random_init:
        p.error("--randomize-bn only applies to --random-init")

    if args.random_init:
        rand_bn = True if args.randomize_bn is None else args.randomize_bn
        model = random_model(args.arch, args.seed, randomize_batchnorm=rand_bn)
        source = f"random init, seed {args.seed}" + (", BN randomized" if rand_bn and args.arch == "resnet50" else "")
    elif args.state_dict:
        try:
            model = load_state_dict_file(args.arch, args.state_dict)
        except (OSError, RuntimeError, KeyError) as e:
            print(f"error: cannot load {args.state_dict} as a torchvision {args.arch} state_dict: {e}",
                  file=sys.stderr)
            return 2
        source = args.state_dict
    else:
        try:
            model = load_pretrained(args.arch)
        except Exception as e:  # network errors come in many types (URLError, OSError, ...)
            print(f"error: could not obtain torchvision {args.arch} IMAGENET1K_V1 weights: "
                  f"{type(e).__name__}: {e}\n"
                  f"  They are downloaded into the torch hub cache ({torch.hub.get_dir()}/checkpoints).\n"
                  f"  Offline: copy the .pth file there, or pass it with --state-dict FILE.pth.",
                  file=sys.stderr)
            return 1
        source = "torchvision IMAGENET1K_V1"

    write_weights(model, args.out)
    n = sum(v.numel() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked"))
    print(f"wrote {args.out}: {args.arch}, {source}, {n:,} parameters+buffers, "
          f"{os.path.getsize(args.out) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
