#!/usr/bin/env python3
"""make_image_fixture.py — writes tests/fixtures/image/: small test images and what Pillow 9 and
torchvision 0.14 make of them, for tests/test_image.cpp to check the C++ transforms bit for bit.
Run by a Pillow 13 (e.g. a virtual environment with torch, torchvision and Pillow 13 from PyPI),
it writes index.pillow13.txt only: the "sweep" and "evalproc" lines as Pillow 13 resizes them
(it runs the vertical pass first when the height shrinks more than twice as much as the width),
which the test checks with lcam's Pillow 13 setting.

Deliberately omits: anything random at run time (every image comes from a fixed integer hash or
a seeded generator, so reruns write identical files) and the ImageNet photos themselves (only
checksums of what Pillow makes of them are recorded; the test skips them when they are absent).
JPEG expectations assume Pillow's libjpeg is libjpeg-turbo 2.1 (Debian 12's libjpeg62-turbo),
the library the engine decodes with.

Needs Pillow, numpy, torch and torchvision (run with /usr/bin/python3 where they are installed):
    /usr/bin/python3 tools/make_image_fixture.py [--out tests/fixtures/image]

Files written:
  img_WxH.png           RGB inputs (smooth gradients and sparse blocks of random pixels)
  img_WxH_61x83.png     Pillow resize results kept as images (small ones; the rest as checksums)
  *_eval_R_C.png        torchvision Resize(R) + CenterCrop(C) + ToTensor, times 255, as uint8
  grey.png, grey_alpha.png, rgba.png, palette.png and their *_rgb.png (PIL's convert("RGB"))
  small*.jpg and their *_pil.png (Pillow's decoding, convert("RGB")): 4:2:0, 4:2:2, 4:4:4,
                        progressive, Adobe CMYK, greyscale, and one with damaged entropy-coded
                        data that Pillow still decodes
  index.txt             one check per line, see the header it writes
  index.pillow13.txt    (Pillow 13) its sweep and evalproc lines, as Pillow 13 makes them

With --imagenet DIR (default ../shared/data/imagenet-sample beside the repository, when present),
adds one line per image there: checksums of Pillow's decode and of the eval transform.

Checksums ("sum64") are sum over i of (byte_i + 1) * (splitmix64(i) | 1) mod 2^64, over the HWC
bytes; the C++ test computes the same. The noisy procedural images of the "sweep" and "evalproc"
lines are never stored: procedural() below is re-implemented in the test.
"""
import argparse  # command line
import io  # truncated files decoded from memory
import os  # paths, listing the photo directory
import random  # the seeded resize sweep

import numpy as np  # arrays, wrapping uint32/uint64 arithmetic
import PIL  # the version: Pillow 13 writes index.pillow13.txt instead
import torch  # checks on ToTensor's output
import torchvision  # the version, for the header
import torchvision.transforms as T  # the eval transform being reproduced
from PIL import Image  # Image.resize(BILINEAR), PNG encoding, mode conversions

from fixture_sum import sum64  # the checksum the test computes

U32 = np.uint32


def mix32(h):
    """lowbias32 integer hash on uint32 arrays (wrapping)."""
    h = h ^ (h >> U32(16))
    h = h * U32(0x7FEB352D)
    h = h ^ (h >> U32(15))
    h = h * U32(0x846CA68B)
    h = h ^ (h >> U32(16))
    return h


def procedural(w, h, seed, noise=17, period=7):
    """HxWx3 uint8: per-channel gradients plus uniform noise in [-(noise//2), noise//2], and
    16x16 blocks of fully random pixels where (x//16 + y//16) % period == 0."""
    with np.errstate(over="ignore"):
        y, x, c = np.meshgrid(np.arange(h, dtype=U32), np.arange(w, dtype=U32),
                              np.arange(3, dtype=U32), indexing="ij")
        n = mix32(U32(seed) * U32(0x9E3779B9) + (y * U32(w) + x) * U32(3) + c)
    xi, yi, ci = x.astype(np.int64), y.astype(np.int64), c.astype(np.int64)
    base = np.where(ci == 0, xi * 255 // max(w - 1, 1),
                    np.where(ci == 1, yi * 255 // max(h - 1, 1),
                             (xi + yi) * 255 // max(w + h - 2, 1)))
    v = base + (n % U32(noise)).astype(np.int64) - noise // 2
    blocks = ((xi >> 4) + (yi >> 4)) % period == 0
    v = np.where(blocks, (n >> U32(24)).astype(np.int64), v)
    return np.clip(v, 0, 255).astype(np.uint8)


def pil_resize(arr, w, h):
    return np.asarray(Image.fromarray(arr, "RGB").resize((w, h), Image.BILINEAR))


def shorter_side_size(w, h, size):
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    return (size, new_long) if w <= h else (new_long, size)


def save_png(arr_or_img, path):
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(path, optimize=True)


def eval_uint8(path, resize, crop):
    """torchvision's eval transform on the PIL-decoded file, checked to be exactly k/255."""
    tf = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor()])
    t = tf(Image.open(path).convert("RGB"))
    assert t.dtype == torch.float32 and tuple(t.shape) == (3, crop, crop)
    k = torch.round(t * 255).to(torch.uint8)
    exact = k.numpy().astype(np.float32) / np.float32(255)
    assert np.array_equal(t.numpy(), exact), "ToTensor is not exactly k/255.f"
    return k.permute(1, 2, 0).contiguous().numpy()


def evalproc_lines():
    """Eval transform on noisy procedural images (the test writes them as PNG, then loads them),
    tall ones included: Pillow 13 resizes images more than twice as tall as wide vertically
    first."""
    lines = []
    for w, h, resize, crop in [(500, 375, 256, 224), (333, 500, 256, 224), (120, 90, 256, 224),
                               (97, 131, 201, 224), (300, 200, 224, 224), (300, 700, 256, 224),
                               (333, 1000, 256, 224)]:
        seed = 500 + w
        tf = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor()])
        t = tf(Image.fromarray(procedural(w, h, seed), "RGB"))
        k = torch.round(t * 255).to(torch.uint8)
        assert np.array_equal(t.numpy(), k.numpy().astype(np.float32) / np.float32(255))
        lines.append(f"evalproc {w} {h} {seed} {resize} {crop} "
                     f"{sum64(k.permute(1, 2, 0).contiguous().numpy())}")
    return lines


def sweep_lines(count):
    """Many sizes on procedural images, checksums only. Fixed edge cases first: identity, one
    pass only, 1-pixel sides, extreme ratios, and ImageNet-typical shorter-side resizes (tall
    ones among them), then `count` seeded random cases."""
    lines = []
    cases = [(1, 1, 5, 3), (5, 3, 1, 1), (7, 1, 3, 9), (1, 9, 4, 2), (64, 48, 64, 48),
             (64, 48, 64, 17), (64, 48, 17, 48), (64, 48, 128, 48), (64, 48, 64, 200),
             (2000, 9, 7, 3), (9, 1500, 2, 11), (3, 2, 700, 5), (255, 256, 256, 255),
             (256, 256, 255, 255), (100, 100, 101, 99), (100, 100, 50, 25), (99, 99, 33, 11)]
    for w, h in [(500, 375), (375, 500), (500, 333), (333, 500), (640, 480), (500, 500),
                 (500, 281), (300, 225), (257, 256), (256, 300), (1024, 683), (160, 120)]:
        cases.append((w, h) + shorter_side_size(w, h, 256))
    rng = random.Random(20240917)
    for _ in range(count):
        w, h = rng.randint(1, 320), rng.randint(1, 320)
        kind = rng.random()
        if kind < 0.4:    # downscale
            ow, oh = rng.randint(1, w), rng.randint(1, h)
        elif kind < 0.7:  # upscale
            ow, oh = rng.randint(w, 2 * w + 3), rng.randint(h, 2 * h + 3)
        else:             # anything
            ow, oh = rng.randint(1, 400), rng.randint(1, 400)
        cases.append((w, h, ow, oh))
    for w, h in [(300, 700), (333, 1000), (480, 1100)]:  # tall: Pillow 13's vertical pass first
        cases.append((w, h) + shorter_side_size(w, h, 256))
    for i, (w, h, ow, oh) in enumerate(cases):
        seed = 1000 + i
        r = pil_resize(procedural(w, h, seed), ow, oh)
        lines.append(f"sweep {w} {h} {seed} {ow} {oh} {sum64(r)}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "image"))
    ap.add_argument("--sweep", type=int, default=160, help="random resize cases to add")
    ap.add_argument("--imagenet", default=os.path.join(here, "..", "..", "shared", "data",
                                                        "imagenet-sample"),
                    help="directory of real JPEG photos to record checksums for")
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)
    versions = f"Pillow {PIL.__version__} / torchvision {torchvision.__version__}"
    if int(PIL.__version__.split(".")[0]) >= 13:
        # Pillow 13 orders the two resize passes otherwise for images that shrink more in height
        # than in width: only the procedural lines, for lcam's --pillow 13, in a file of their own.
        lines = [f"# Expected results of {versions} (lcam's --pillow 13), written by "
                 "tools/make_image_fixture.py; the kinds as in index.txt."]
        lines += evalproc_lines()
        lines += sweep_lines(args.sweep)
        with open(os.path.join(out, "index.pillow13.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {len(lines)} index lines to {os.path.join(out, 'index.pillow13.txt')}")
        return
    lines = [
        f"# Expected results of {versions}, written by tools/make_image_fixture.py.",
        "# resize  INPUT OUT_W OUT_H SUM64 [EXPECTED.png]   PIL resize((OUT_W, OUT_H), BILINEAR)",
        "# shorter INPUT SIZE OUT_W OUT_H SUM64 [EXPECTED.png]  torchvision Resize(SIZE)",
        "# eval    INPUT RESIZE CROP EXPECTED.png         Resize + CenterCrop + ToTensor, *255",
        "# convert INPUT EXPECTED_RGB.png                 Image.open(INPUT).convert('RGB')",
        "# jpeg    INPUT PIL_RGB.png MAXDIFF             decodes within MAXDIFF levels of Pillow",
        "# evalsum INPUT RESIZE CROP SUM64               eval transform of INPUT, checksum only",
        "# cut     INPUT KEEP OK|ERR [SUM64]             first KEEP bytes: Pillow decodes or raises",
        "# imagenet NAME W H DECODE_SUM64 EVAL_SUM64     a photo of --imagenet: decode, eval 256/224",
        "# evalproc W H SEED RESIZE CROP SUM64            eval transform of procedural(W, H, SEED)",
        "# sweep   W H SEED OUT_W OUT_H SUM64             resize of procedural(W, H, SEED)",
    ]

    # RGB inputs: gradients and sparse blocks of random pixels (every value, sharp edges) keep the
    # PNGs small; the sweep below covers noisy images without storing them.
    inputs = [(300, 257, 1), (257, 300, 2), (500, 375, 3), (97, 131, 4), (224, 224, 5),
              (1000, 40, 6)]
    for w, h, seed in inputs:
        name = f"img_{w}x{h}.png"
        arr = procedural(w, h, seed, noise=1, period=23)
        save_png(arr, os.path.join(out, name))
        arr = np.asarray(Image.open(os.path.join(out, name)).convert("RGB"))
        sw, sh = shorter_side_size(w, h, 256)
        r = pil_resize(arr, sw, sh)
        # torchvision's Resize must be this very PIL call.
        assert np.array_equal(np.asarray(T.Resize(256)(Image.fromarray(arr))), r)
        lines.append(f"shorter {name} 256 {sw} {sh} {sum64(r)}")
        for ow, oh in [(61, 83), (400, 300), (w, 150), (150, h), (w // 3 + 1, h * 2)]:
            r = pil_resize(arr, ow, oh)
            line = f"resize {name} {ow} {oh} {sum64(r)}"
            if ow * oh <= 61 * 83:
                exp = f"{name[:-4]}_{ow}x{oh}.png"
                save_png(r, os.path.join(out, exp))
                line += " " + exp
            lines.append(line)
        for resize, crop in [(256, 224)] + ([(201, 224)] if (w, h) == (97, 131) else []):
            exp = f"{name[:-4]}_eval_{resize}_{crop}.png"
            save_png(eval_uint8(os.path.join(out, name), resize, crop), os.path.join(out, exp))
            lines.append(f"eval {name} {resize} {crop} {exp}")

    # Mode conversions: grey, grey+alpha, RGBA and palette PNGs against PIL's convert("RGB").
    g = procedural(40, 30, 7)
    modes = {
        "grey.png": Image.fromarray(g[:, :, 0], "L"),
        "grey_alpha.png": Image.fromarray(g[:, :, :2].copy(), "LA"),
        "rgba.png": Image.fromarray(np.concatenate([g, g[:, :, 1:2] ^ 0x5A], axis=2), "RGBA"),
        "palette.png": Image.fromarray(g).quantize(colors=37),
    }
    for name, img in modes.items():
        save_png(img, os.path.join(out, name))
        exp = name[:-4] + "_rgb.png"
        save_png(Image.open(os.path.join(out, name)).convert("RGB"), os.path.join(out, exp))
        lines.append(f"convert {name} {exp}")

    # JPEG: baseline 4:2:0 (Pillow's default), 4:2:2, 4:4:4 (most ImageNet photos), progressive,
    # Adobe CMYK (as some ImageNet files are), greyscale. libjpeg-turbo decodes them exactly as
    # Pillow does, so the expected difference is 0.
    j = Image.fromarray(procedural(83, 61, 8, noise=1, period=5))
    jpegs = [("small.jpg", j, {}), ("small_422.jpg", j, {"subsampling": 1}),
             ("small_444.jpg", j, {"subsampling": 0}),
             ("small_progressive.jpg", j, {"progressive": True}),
             ("small_cmyk.jpg", j.convert("CMYK"), {}), ("small_grey.jpg", j.convert("L"), {})]
    for name, img, kw in jpegs:
        img.save(os.path.join(out, name), quality=90, **kw)
    # Damaged entropy-coded data: libjpeg warns and carries on, Pillow ignores the warning.
    data = bytearray(open(os.path.join(out, "small.jpg"), "rb").read())
    pos = len(data) * 3 // 4
    data[pos:pos + 2] = b"\x5a\x69"
    with open(os.path.join(out, "small_corrupt.jpg"), "wb") as f:
        f.write(bytes(data))
    for name in [n for n, _, _ in jpegs] + ["small_corrupt.jpg"]:
        exp = name[:-4] + "_pil.png"
        save_png(Image.open(os.path.join(out, name)).convert("RGB"), os.path.join(out, exp))
        lines.append(f"jpeg {name} {exp} 0")
        for resize, crop in [(256, 224), (48, 40), (61, 70)]:
            lines.append(f"evalsum {name} {resize} {crop} "
                         f"{sum64(eval_uint8(os.path.join(out, name), resize, crop))}")

    # Truncated files: Pillow (LOAD_TRUNCATED_IMAGES off) raises unless the data is complete.
    for name in ["small.jpg", "small_progressive.jpg", "small_cmyk.jpg"]:
        data = open(os.path.join(out, name), "rb").read()
        n = len(data)
        for keep in sorted({n, n - 1, n - 2, n - 3, n - 30, n * 2 // 3, n // 2, 300, 100, 3}):
            try:
                arr = np.asarray(Image.open(io.BytesIO(data[:keep])).convert("RGB"))
                lines.append(f"cut {name} {keep} OK {sum64(arr)}")
            except (OSError, SyntaxError):
                lines.append(f"cut {name} {keep} ERR")

    # Eval transform on noisy procedural images (the test writes them as PNG, then loads them).
    lines += evalproc_lines()

    lines += sweep_lines(args.sweep)

    # Real photos: checksums of Pillow's decode and of the eval transform.
    if args.imagenet and os.path.isdir(args.imagenet):
        names = sorted(n for n in os.listdir(args.imagenet)
                       if os.path.isfile(os.path.join(args.imagenet, n)))
        for name in names:
            path = os.path.join(args.imagenet, name)
            arr = np.asarray(Image.open(path).convert("RGB"))
            lines.append(f"imagenet {name} {arr.shape[1]} {arr.shape[0]} {sum64(arr)} "
                         f"{sum64(eval_uint8(path, 256, 224))}")
        print(f"recorded {len(names)} photos of {args.imagenet}")
    else:
        print(f"no {args.imagenet}: no imagenet lines")

    with open(os.path.join(out, "index.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"wrote {len(lines)} index lines, {len(os.listdir(out))} files, {total} bytes to {out}")


if __name__ == "__main__":
    main()
