#!/usr/bin/env python3
"""make_format_fixture.py — writes tests/fixtures/image/formats/: small Netpbm files (P1-P6, plain
and raw, maxvals 1 to 65535, damaged headers and data) and GIFs (transparency, a first frame
smaller than the screen or reaching past it, interlaced, two frames, stray bytes, no colour
table, LZW without a leading clear code or with a deferred clear, end codes inside the data,
odd extensions; cut short at the places that matter), 16-bit grey PNGs, BMPs (rows either
way up, RLE8/RLE4, 16-bit, bitfields, OS/2 headers, grey-ramp palettes, cuts), TGAs (rows
either way up and mirrored, RLE, 1-bit, colour maps, Pillow's refusals), WebPs and 8-bit RGB
PSDs, TIFFs (every compression Pillow writes, and hand-written layouts it does not write), JPEG
2000s, PCXs, DCXs, cursors, LAB images, AVIFs (Pillow-written, and at 10 and 12 bits, with other
matrices, grids and transforms by Debian's avifenc, from libavif-bin, when it is installed), and
what Pillow makes of them with Image.open(path).convert("RGB"), for tests/test_image.cpp to check
lcam's decoders (loaders/pnm.cpp, gif.cpp, bmp.cpp, tga.cpp, webp.cpp, tiff.cpp, and the PNG
and PSD rules of image.cpp) byte for byte.

Run by Pillow 13 (the reference: e.g. a virtual environment with Pillow 13 and numpy from PyPI):
    PYTHON tools/make_format_fixture.py [--out tests/fixtures/image/formats]
With --compare, writes nothing and prints the cases where this Pillow disagrees with the index
already written (Debian's Pillow 9.4: the negative plain value, which 9.4 wraps to a byte; six
BMPs: 9.4's RLE decoder, its 32-bit ABGR bitfields and its grey-ramp rows differ; four TGAs: its
colour maps and its footer seek differ; 9.4 also reads a plain file's last value twice when no
whitespace follows it, which no case here tells apart).
The GIFs and WebPs are written by the Pillow that runs the script: rerun with another Pillow,
they may differ in their bytes, and the index records that Pillow's outcomes for them.

index.txt lines:
  file NAME OK W H SUM64 | file NAME ERR          the file as it is
  file NAME OK W H SUM64 lcam-refuses             a TIFF Pillow reads and lcam refuses on purpose
  pad NAME SRC OFFSET KIND K OK W H SUM64 | ... ERR
      SRC with K bytes inserted at OFFSET: KIND "space" (K spaces), "comment" ('#', K - 2
      'c', LF), "comment_open" (K 'c') or "zeros" (K zero bytes: empty GIF sub-blocks): files
      over Pillow's read blocks (1 MiB for PNM, 64 KiB for GIF), built by the test the same
      way, so that tokens, comments and codes straddle a block boundary without a megabyte in
      the repository.
SUM64 is tools/fixture_sum.py's checksum of the HWC RGB bytes.

With --platform-index, run by Pillow 13 on another CPU than x86-64, writes nothing but
index.MACHINE.txt (MACHINE: platform.machine(), e.g. aarch64): the index lines whose outcome
this Pillow gives differently for the committed files, each ending with who lcam follows there:
"lcam" where lcam on that CPU gives the same (a library's own floating point: OpenJPEG's
irreversible wavelet), "x86-64" where lcam keeps index.txt's bytes on every CPU (Pillow's
wheels for that CPU take other SIMD paths in libyuv and fuse libavif's float arithmetic). For
aarch64, under qemu-aarch64 from an x86-64 machine: a Debian arm64 tree with python3.11
(mmdebstrap --variant=extract --include=python3.11,libstdc++6 bookworm DIR), PyPI's Pillow 13
and numpy aarch64 wheels unpacked into DIR/opt/pil, then
    QEMU_LD_PREFIX=DIR PYTHONPATH=DIR/opt/pil qemu-aarch64 DIR/usr/bin/python3.11 \
        tools/make_format_fixture.py --platform-index

Deliberately omits: randomness at run time (a seeded generator), and Pillow's own variants
(Pf, P0CMYK, Py*), which lcam refuses by name (checked in the test without Pillow).
"""
import argparse  # command line
import io  # decoding from memory
import os  # paths
import struct  # GIF screen and frame fields, PNG chunks, BMP headers
import tempfile  # each case is opened from a file
import zlib  # PNG chunk CRC

import numpy as np  # sample arrays
import PIL  # the version, for the header
from PIL import Image  # the reference decoder

from fixture_sum import sum64  # the checksum the test computes

HERE = os.path.dirname(os.path.abspath(__file__))


def plain(values, per_line=7):
    """Decimal tokens, a few per line."""
    v = [str(int(x)) for x in np.asarray(values).ravel()]
    return ("\n".join(" ".join(v[i:i + per_line]) for i in range(0, len(v), per_line)) + "\n").encode()


def files():
    """NAME -> bytes of every case."""
    rng = np.random.default_rng(20261206)
    w, h = 13, 5
    out = {}
    bits = (rng.random((h, w)) > 0.5).astype(np.uint8)
    grey = rng.integers(0, 256, (h, w))
    rgb = rng.integers(0, 256, (h, w, 3))
    # Bitmaps.
    out["p1.pbm"] = b"P1\n# a comment\n%d %d\n" % (w, h) + plain(bits)
    out["p1_packed.pbm"] = b"P1 %d %d\n" % (w, h) + b"".join(bytes(r + 48) for r in bits) + b"\n"
    out["p1_comment_in_data.pbm"] = b"P1 3 1\n0#c\n10"
    out["p1_garbage_after.pbm"] = b"P1 2 1\n01 x"
    out["p1_bad_byte.pbm"] = b"P1 2 2\n0 1 2 1\n"
    out["p1_short.pbm"] = b"P1 2 2\n0 1 1"
    out["p4.pbm"] = b"P4\n%d %d\n" % (w, h) + np.packbits(bits, axis=1).tobytes()
    out["p4_w8.pbm"] = b"P4 8 5\n" + np.packbits(bits[:, :8], axis=1).tobytes()
    out["p4_extra.pbm"] = out["p4.pbm"] + b"\x00\xff trailing"
    out["p4_short.pbm"] = out["p4.pbm"][:-1]
    # Grey.
    out["p2.pgm"] = b"P2\n%d %d\n255\n" % (w, h) + plain(grey)
    out["p2_max15.pgm"] = b"P2 %d %d 15\n" % (w, h) + plain(grey % 16)
    out["p2_max2.pgm"] = b"P2 3 1 2\n0 1 2\n"  # 127.5 rounds to 128 (half to even)
    out["p2_max1000.pgm"] = b"P2 %d %d 1000\n" % (w, h) + plain(rng.integers(0, 1001, (h, w)))
    out["p2_max65535_dark.pgm"] = b"P2 %d %d 65535\n" % (w, h) + plain(rng.integers(0, 400, (h, w)))
    out["p2_join.pgm"] = b"P2 1 1 255\n1#c\n2"
    out["p2_no_newline.pgm"] = b"P2 2 1 255\n1 2"
    out["p2_garbage_after.pgm"] = b"P2 2 1 255\n1 2 zz"
    out["p2_above_max.pgm"] = b"P2 2 1 100\n1 101\n"
    out["p2_negative.pgm"] = b"P2 2 1 255\n-3 4\n"
    out["p2_long_token.pgm"] = b"P2 2 1 255\n1 00000000002\n"
    out["p2_ten_digits.pgm"] = b"P2 2 1 255\n0000000001 +2\n"
    out["p2_underscore.pgm"] = b"P2 2 1 255\n1_0 2\n"
    out["p2_bad_underscore.pgm"] = b"P2 2 1 255\n1__0 2\n"
    out["p2_not_int.pgm"] = b"P2 2 1 255\n1 0x2\n"
    out["p5.pgm"] = b"P5\n%d %d\n255\n" % (w, h) + grey.astype(np.uint8).tobytes()
    out["p5_max100.pgm"] = b"P5 %d %d 100\n" % (w, h) + rng.integers(0, 256, (h, w)).astype(np.uint8).tobytes()
    out["p5_max256.pgm"] = b"P5 %d %d 256\n" % (w, h) + rng.integers(0, 300, (h, w)).astype(">u2").tobytes()
    out["p5_max1000.pgm"] = b"P5 %d %d 1000\n" % (w, h) + rng.integers(0, 1001, (h, w)).astype(">u2").tobytes()
    out["p5_max65535.pgm"] = b"P5 %d %d 65535\n" % (w, h) + rng.integers(0, 600, (h, w)).astype(">u2").tobytes()
    out["p5_short.pgm"] = out["p5.pgm"][:-1]
    out["p5_max1000_short.pgm"] = out["p5_max1000.pgm"][:-1]
    # Colour.
    out["p3.ppm"] = b"P3\n%d %d\n255\n" % (w, h) + plain(rgb)
    out["p3_max100.ppm"] = b"P3 %d %d 100\n" % (w, h) + plain(rgb * 100 // 255)
    out["p3_max300.ppm"] = b"P3 %d %d 300\n" % (w, h) + plain(rng.integers(0, 301, (h, w, 3)))
    out["p6.ppm"] = b"P6\n# made by lcam\n%d %d\n255\n" % (w, h) + rgb.astype(np.uint8).tobytes()
    out["p6_max100.ppm"] = b"P6 %d %d 100\n" % (w, h) + rng.integers(0, 256, (h, w, 3)).astype(np.uint8).tobytes()
    out["p6_max65535.ppm"] = b"P6 %d %d 65535\n" % (w, h) + rng.integers(0, 65536, (h, w, 3)).astype(">u2").tobytes()
    out["p6_max1023.ppm"] = b"P6 %d %d 1023\n" % (w, h) + rng.integers(0, 1100, (h, w, 3)).astype(">u2").tobytes()
    out["p6_short.ppm"] = out["p6.ppm"][:-2]
    # Headers.
    out["hdr_whitespace.ppm"] = b"P6\t%d\r%d\x0b255\x0c" % (w, h) + rgb.astype(np.uint8).tobytes()
    out["hdr_comment_in_token.pgm"] = b"P5 1#c\n3 5 255\n" + grey.astype(np.uint8).tobytes()
    out["hdr_comment_cr.pgm"] = b"P5 #c\r13 5 255\n" + grey.astype(np.uint8).tobytes()
    out["hdr_plus.pgm"] = b"P5 +13 5 2_55\n" + grey.astype(np.uint8).tobytes()
    out["hdr_maxval0.pgm"] = b"P5 13 5 0\n" + grey.astype(np.uint8).tobytes()
    out["hdr_maxval65536.pgm"] = b"P5 13 5 65536\n" + grey.astype(np.uint8).tobytes()
    out["hdr_long_token.pgm"] = b"P5 00000000013 5 255\n" + grey.astype(np.uint8).tobytes()
    out["hdr_eof.pgm"] = b"P5 13 5"
    out["hdr_magic_only.ppm"] = b"P6"
    out["hdr_not_int.pgm"] = b"P5 13 5 25x\n" + grey.astype(np.uint8).tobytes()
    out["hdr_comment_eats_data.pgm"] = b"P5 13 5 255#c\n" + grey.astype(np.uint8).tobytes()
    # Files for the "pad" lines (kept small; the test inserts the padding).
    out["pad_p2.pgm"] = b"P2\n4 1\n255\n12 34 56 78\n"
    out["pad_p1.pbm"] = b"P1\n4 1\n01 10\n"
    out["pad_quirk.pgm"] = b"P2\n4 1\n255\n12 #\n34 56\r78 90\n"
    out.update(gifs(rng))
    out.update(pngs(rng))
    out.update(bmps(rng))
    out.update(tgas(rng))
    out.update(webps(rng))
    out.update(psds(rng))
    out.update(tiffs(rng))
    out.update(icos(np.random.default_rng(20261208)))
    out.update(jpeg2000s(np.random.default_rng(20261207)))
    out.update(pcxs(np.random.default_rng(20261210)))
    out.update(curs(np.random.default_rng(20261211)))
    out.update(labs(np.random.default_rng(20261212)))
    out.update(dcxs(np.random.default_rng(20261213)))
    out.update(avifs(np.random.default_rng(20261214)))
    return out


# Files lcam refuses on purpose although Pillow reads them (loaders/tiff.cpp and psd.cpp say
# why): their index lines end with "lcam-refuses".
LCAM_REFUSES = {"tif_ycbcr_raw.tif"}


def packbits(row):
    """PackBits: runs of 2-128 equal bytes, literals of up to 128."""
    out, i, n = b"", 0, len(row)
    while i < n:
        j = i
        while j < n and j - i < 128 and row[j] == row[i]:
            j += 1
        if j - i >= 2:
            out += bytes([257 - (j - i), row[i]])
        else:
            j = i + 1
            while j < n and j - i < 128 and (j + 1 >= n or row[j] != row[j + 1]):
                j += 1
            out += bytes([j - i - 1]) + bytes(row[i:j])
        i = j
    return out


def tiff_file(w, h, photo, bits, planes, spp=None, order="<", big=False, comp=1, rows=None, tile=None, extras=(),
              fill=1, orientation=None, colormap=None, fmt=None, predictor=None, header=None, planar=None,
              retype=None, more=(), count=None):
    """A TIFF of one directory from `planes`: a list of byte strings of packed rows, one for
    contiguous samples or one per sample (planar configuration 2). Strips of `rows` rows or tiles
    of `tile` (w, h) pixels, each compressed with `comp` (1 none, 8 deflate, 32773 PackBits).
    `retype` {tag: (type, values)} replaces entries (None drops one), `more` appends entries
    (duplicates included), `count` overrides the directory's entry count."""
    spp = spp or (len(planes) if len(planes) > 1 else 1)
    per_plane = spp if len(planes) == 1 else 1
    row_bytes = (w * bits * per_plane + 7) // 8
    pieces = []
    for plane in planes:
        if tile:
            tw, th = tile
            trow = (tw * bits * per_plane + 7) // 8
            for ty in range(0, h, th):
                for tx in range(0, w, tw):
                    t = bytearray(trow * th)
                    x0 = tx * bits * per_plane // 8
                    for r in range(min(th, h - ty)):
                        src = plane[(ty + r) * row_bytes + x0:(ty + r) * row_bytes + min(row_bytes, x0 + trow)]
                        t[r * trow:r * trow + len(src)] = src
                    pieces.append(bytes(t))
        else:
            rr = rows or h
            for y in range(0, h, rr):
                pieces.append(plane[y * row_bytes:min(h, y + rr) * row_bytes])
    if comp == 8:
        pieces = [zlib.compress(p) for p in pieces]
    elif comp == 32773:
        rb = ((tile[0] if tile else w) * bits * per_plane + 7) // 8
        pieces = [b"".join(packbits(p[i:i + rb]) for i in range(0, len(p), rb)) for p in pieces]
    tags = {256: (4, [w]), 257: (4, [h]), 258: (3, [bits] * spp), 259: (3, [comp]), 262: (3, [photo]),
            277: (3, [spp]), 284: (3, [planar or (1 if len(planes) == 1 else 2)])}
    if fill != 1:
        tags[266] = (3, [fill])
    if orientation:
        tags[274] = (3, [orientation])
    if extras:
        tags[338] = (3, list(extras))
    if fmt:
        tags[339] = (3, [fmt] * spp)
    if predictor:
        tags[317] = (3, [predictor])
    if colormap is not None:
        tags[320] = (3, list(colormap))
    off_tag, cnt_tag = (324, 325) if tile else (273, 279)
    if tile:
        tags[322], tags[323] = (3, [tile[0]]), (3, [tile[1]])
    else:
        tags[278] = (4, [rows or h])
    head = 16 if big else 8
    data_at = head
    offsets = []
    for p in pieces:
        offsets.append(data_at)
        data_at += len(p)
    tags[off_tag] = (16 if big else 4, offsets)
    tags[cnt_tag] = (16 if big else 4, [len(p) for p in pieces])
    for tag, tv in (retype or {}).items():
        if tv is None:
            tags.pop(tag, None)
        else:
            tags[tag] = tv
    entries = [(tag, *tags[tag]) for tag in sorted(tags)] + list(more)
    fmt_of = {1: "B", 3: "H", 4: "I", 5: "II", 6: "b", 8: "h", 9: "i", 11: "f", 12: "d", 16: "Q"}
    entry, count_fmt, next_fmt, inline = (20, "Q", "Q", 8) if big else (12, "H", "I", 4)
    ifd_at = data_at + (data_at & 1)
    extra_at = ifd_at + struct.calcsize(order + count_fmt) + entry * len(entries) + struct.calcsize(order + next_fmt)
    ifd, extra = struct.pack(order + count_fmt, len(entries) if count is None else count), b""
    for tag, typ, vals in entries:
        if typ in (2, 7) or typ not in fmt_of:  # ASCII, UNDEFINED, unknown types: bytes
            raw, n = bytes(vals), len(vals)
        else:
            raw = struct.pack(order + fmt_of[typ] * (len(vals) // (2 if typ == 5 else 1)), *vals)
            n = len(vals) // (2 if typ == 5 else 1)
        if len(raw) <= inline:
            value = raw + bytes(inline - len(raw))
        else:
            value = struct.pack(order + ("Q" if big else "I"), extra_at + len(extra))
            extra += raw
        ifd += struct.pack(order + ("HHQ" if big else "HHI"), tag, typ, n) + value
    ifd += struct.pack(order + next_fmt, 0)
    if big:
        hdr = (b"II" if order == "<" else b"MM") + struct.pack(order + "HHHQ", 43, 8, 0, ifd_at)
    else:
        hdr = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, ifd_at)
    if header:
        hdr = header + hdr[4:]
    return hdr + b"".join(pieces) + bytes(ifd_at - data_at) + ifd + extra


def pack_bits(values, bits):
    """Rows of samples packed MSB first, each row padded to a byte."""
    out = b""
    for row in values:
        acc, n, line = 0, 0, bytearray()
        for v in row:
            acc, n = acc << bits | int(v), n + bits
            if n == 8:
                line.append(acc)
                acc, n = 0, 0
        if n:
            line.append(acc << (8 - n))
        out += bytes(line)
    return out


def reverse_bits(data):
    return bytes(int(f"{b:08b}"[::-1], 2) for b in data)


def reverse_fill2_deflate(data):
    """The one deflate strip of a file from tiff_file, its bytes bit-reversed as fill order 2 stores them."""
    start = 8
    end = struct.unpack("<I", data[4:8])[0]
    return data[:start] + reverse_bits(data[start:end]) + data[end:]


def tiffs(rng):
    """TIFFs Pillow writes (every compression it has), and hand-written ones for the layouts
    it does not write: min-is-white, 2- and 4-bit grey and palettes, fill order 2, associated
    alpha, extra samples, tiles, separate planes, 16-bit RGB and CMYK, signed samples,
    predictors, BigTIFF, swapped version fields, Orientation (and Pillow's mapped-file reading
    of it), what Pillow refuses and what lcam refuses, files cut short."""
    out = {}
    w, h = 19, 11
    rgb = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    rgb[2:5, 3:12] = (10, 200, 30)  # runs for PackBits and LZW
    im = Image.fromarray(rgb)
    saves = [("rgb", im, None), ("rgb", im, "tiff_lzw"), ("rgb", im, "tiff_adobe_deflate"), ("rgb", im, "packbits"),
             ("rgb", im, "jpeg"), ("rgb", im, "lzma"), ("rgb", im, "zstd"), ("ycbcr", im.convert("YCbCr"), "jpeg"),
             ("ycbcr", im.convert("YCbCr"), "tiff_lzw"), ("l", im.convert("L"), None), ("l", im.convert("L"), "jpeg"),
             ("1", im.convert("1"), None), ("1", im.convert("1"), "group4"), ("1", im.convert("1"), "group3"),
             ("1", im.convert("1"), "tiff_ccitt"), ("p", im.convert("P", palette=Image.ADAPTIVE, colors=37), None),
             ("p", im.convert("P", palette=Image.ADAPTIVE, colors=37), "tiff_lzw"), ("pa", im.convert("PA"), None),
             ("rgba", im.convert("RGBA"), "tiff_adobe_deflate"), ("la", im.convert("LA"), None),
             ("cmyk", im.convert("CMYK"), None), ("cmyk", im.convert("CMYK"), "jpeg"),
             ("i16", Image.fromarray((rng.integers(0, 700, (h, w))).astype(np.uint16)), None),
             ("i16b", Image.fromarray((rng.integers(0, 700, (h, w))).astype(np.uint16)).convert("I;16B"), None)]
    for name, image, comp in saves:
        b = io.BytesIO()
        image.save(b, "TIFF", **({"compression": comp} if comp else {}))
        out[f"tif_{name}_{comp or 'raw'}.tif"] = b.getvalue()
    b = io.BytesIO()
    im.save(b, "TIFF", compression="tiff_adobe_deflate", tiffinfo={274: 6})
    out["tif_rgb_orient6_deflate.tif"] = b.getvalue()
    grey = rng.integers(0, 256, (h, w)).astype(np.uint8)
    c = rgb.tobytes()
    alpha = rng.integers(0, 256, (h, w, 1)).astype(np.uint8)
    alpha[0, :4, 0] = (0, 255, 1, 128)
    premul = (rgb.astype(np.uint32) * alpha // 255).astype(np.uint8)
    rgba_assoc = np.concatenate([premul, alpha], -1)
    cmap = list(rng.integers(0, 65536, 3 * 16))
    four = rng.integers(0, 16, (h, w))
    two = rng.integers(0, 4, (h, w))
    rgb16 = rng.integers(0, 65536, (h, w, 3)).astype(np.uint16)
    t = out
    t["tif_l_miniswhite.tif"] = tiff_file(w, h, 0, 8, [grey.tobytes()])
    t["tif_l4_miniswhite.tif"] = tiff_file(w, h, 0, 4, [pack_bits(four, 4)], rows=3)
    t["tif_l2_minisblack.tif"] = tiff_file(w, h, 1, 2, [pack_bits(two, 2)])
    t["tif_p4.tif"] = tiff_file(w, h, 3, 4, [pack_bits(four, 4)], colormap=cmap)
    t["tif_p2_fill2.tif"] = tiff_file(w, h, 3, 2, [reverse_bits(pack_bits(two, 2))], fill=2, colormap=cmap[:4] + cmap[16:20] + cmap[32:36])
    t["tif_l_fill2.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], fill=2)
    t["tif_l_fill2_deflate.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], fill=2, comp=8)  # deflate data left unreversed
    t["tif_p2_fill2_deflate.tif"] = reverse_fill2_deflate(tiff_file(w, h, 3, 2, [pack_bits(two, 2)], fill=2, comp=8,
                                                                     colormap=cmap[:4] + cmap[16:20] + cmap[32:36]))
    t["tif_rgb_fill2.tif"] = tiff_file(w, h, 2, 8, [reverse_bits(c)], spp=3, fill=2)
    t["tif_l_miniswhite_fill2.tif"] = tiff_file(w, h, 0, 8, [grey.tobytes()], fill=2)
    t["tif_1_miniswhite_fill2.tif"] = tiff_file(w, h, 0, 1, [pack_bits(two & 1, 1)], fill=2, rows=4)
    t["tif_l_signed.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], fmt=2)
    t["tif_i16_signed_mm.tif"] = tiff_file(w, h, 1, 16, [(rng.integers(-300, 600, (h, w))).astype(">i2").tobytes()], fmt=2, order=">")
    t["tif_i16_miniswhite.tif"] = tiff_file(w, h, 0, 16, [(rng.integers(0, 600, (h, w))).astype("<u2").tobytes()])
    t["tif_rgba_assoc.tif"] = tiff_file(w, h, 2, 8, [rgba_assoc.tobytes()], spp=4, extras=(1,))
    t["tif_rgba_assoc_planar_deflate.tif"] = tiff_file(w, h, 2, 8, [rgba_assoc[..., k].tobytes() for k in range(4)], extras=(1,), comp=8)
    t["tif_rgba_assoc_planar_raw.tif"] = tiff_file(w, h, 2, 8, [rgba_assoc[..., k].tobytes() for k in range(4)], extras=(1,))
    t["tif_rgba_999.tif"] = tiff_file(w, h, 2, 8, [rgba_assoc.tobytes()], spp=4, extras=(999,))
    t["tif_rgb_extras_ax.tif"] = tiff_file(w, h, 2, 8, [np.concatenate([rgba_assoc, alpha], -1).tobytes()], spp=5, extras=(2, 0))
    t["tif_rgb_extras_xx.tif"] = tiff_file(w, h, 2, 8, [np.concatenate([rgba_assoc, alpha], -1).tobytes()], spp=5, extras=(0, 0), comp=32773)
    t["tif_rgb_tiles_deflate.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, tile=(16, 16), comp=8)
    t["tif_rgb_tiles_raw.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, tile=(16, 16))
    t["tif_rgb_planar_raw.tif"] = tiff_file(w, h, 2, 8, [rgb[..., k].tobytes() for k in range(3)], rows=4)
    t["tif_rgb_planar_deflate_tiles.tif"] = tiff_file(w, h, 2, 8, [rgb[..., k].tobytes() for k in range(3)], tile=(16, 16), comp=8)
    t["tif_rgb_planar_extra_raw.tif"] = tiff_file(w, h, 2, 8, [rgba_assoc[..., k].tobytes() for k in range(4)], extras=(0,))
    t["tif_rgb_planar_extra_deflate.tif"] = tiff_file(w, h, 2, 8, [rgba_assoc[..., k].tobytes() for k in range(4)], extras=(0,), comp=8)
    t["tif_l_planar_miniswhite.tif"] = tiff_file(w, h, 0, 8, [grey.tobytes()], rows=4, planar=2)
    t["tif_l_planar_miniswhite_orient6.tif"] = tiff_file(w, h, 0, 8, [grey.tobytes()], planar=2, orientation=6)
    t["tif_rgb16_mm.tif"] = tiff_file(w, h, 2, 16, [rgb16.astype(">u2").tobytes()], spp=3, order=">")
    t["tif_rgb16_deflate.tif"] = tiff_file(w, h, 2, 16, [rgb16.astype("<u2").tobytes()], spp=3, comp=8)
    t["tif_rgb16_planar_raw.tif"] = tiff_file(w, h, 2, 16, [rgb16[..., k].astype("<u2").tobytes() for k in range(3)])
    t["tif_cmyk16.tif"] = tiff_file(w, h, 5, 16, [rng.integers(0, 65536, (h, w, 4)).astype("<u2").tobytes()], spp=4)
    t["tif_rgb_predictor_deflate.tif"] = tiff_file(w, h, 2, 8, [np.concatenate([rgb[:, :1], (rgb[:, 1:].astype(int) - rgb[:, :-1]) % 256], 1).astype(np.uint8).tobytes()], spp=3, comp=8, predictor=2)
    t["tif_bigtiff_ii.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, big=True, rows=5)
    t["tif_bigtiff_mm.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, big=True, order=">")
    t["tif_swapped_version_raw.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, header=b"II\x00\x2a")
    t["tif_swapped_version_deflate.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, comp=8, order=">", header=b"MM\x2a\x00")
    for o in range(2, 9):
        t[f"tif_orient{o}_rgb_strips.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, rows=4, orientation=o)
    t["tif_orient6_l_one_strip.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], orientation=6)
    t["tif_orient7_p_one_strip.tif"] = tiff_file(w, h, 3, 8, [grey.tobytes()], orientation=7, colormap=list(rng.integers(0, 65536, 3 * 256)))
    t["tif_orient8_rgba_one_strip.tif"] = tiff_file(w, h, 2, 8, [rgba_assoc.tobytes()], spp=4, extras=(2,), orientation=8)
    t["tif_orient5_cmyk_one_strip.tif"] = tiff_file(w, h, 5, 8, [rgba_assoc.tobytes()], spp=4, orientation=5)
    t["tif_orient6_i16_one_strip.tif"] = tiff_file(w, h, 1, 16, [(rng.integers(0, 400, (h, w))).astype("<u2").tobytes()], orientation=6)
    t["tif_orient6_l_tile_fits.tif"] = tiff_file(16, 16, 1, 8, [rng.integers(0, 256, (16, 16)).astype(np.uint8).tobytes()], tile=(16, 16), orientation=6)
    t["tif_orient5_wide_tile.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], tile=(32, 16), orientation=5)
    # Pillow's directory: Python types, first entries, skipped and cut entries, XMP.
    t["tif_ifd_width_rational.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, retype={256: (5, [w, 1])})
    t["tif_ifd_compression_float.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, retype={259: (11, [1.0])})
    t["tif_ifd_photometric_two.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], retype={262: (3, [1, 1])})
    t["tif_ifd_rows_float_above.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], retype={278: (12, [h + 0.5])})
    t["tif_ifd_rows_float_below.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], rows=4, retype={278: (11, [4.0])})
    t["tif_ifd_rows_float_one_strip.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], retype={278: (11, [3.0])})
    t["tif_ifd_offsets_byte.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], retype={273: (1, [8])})
    t["tif_ifd_duplicate_first_wins.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], more=[(262, 3, [0])])
    t["tif_ifd_bits_signed.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, retype={258: (8, [8, 8, 8])})
    t["tif_ifd_cut_entries.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], count=40)
    t["tif_ifd_data_past_end.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], more=[(305, 2, list(b"x" * 9000))])[:-8000]
    t["tif_ifd_one_strip_short_rows.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], retype={278: (3, [2])})
    t["tif_ifd_unknown_type.tif"] = tiff_file(w, h, 1, 8, [grey.tobytes()], more=[(274, 99, [0]), (274, 3, [3])])
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    t["tif_xmp_orientation.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, more=[(700, 1, list(xmp))])
    t["tif_xmp_not_bytes.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, more=[(700, 3, [5, 6])])
    t["tif_ycbcr_raw.tif"] = tiff_file(w, h, 6, 8, [c], spp=3)
    t["tif_float32.tif"] = tiff_file(w, h, 1, 32, [(rng.random((h, w)) * 300).astype("<f4").tobytes()], fmt=3)
    t["tif_lab.tif"] = tiff_file(w, h, 8, 8, [c], spp=3)
    t["tif_lab_deflate.tif"] = tiff_file(w, h, 8, 8, [c], spp=3, comp=8)
    t["tif_grey12.tif"] = tiff_file(w, h, 1, 12, [rng.integers(0, 256, ((w * 12 + 7) // 8) * h).astype(np.uint8).tobytes()])
    t["tif_la_assoc.tif"] = tiff_file(w, h, 1, 8, [np.concatenate([grey[..., None], alpha], -1).tobytes()], spp=2, extras=(1,))
    t["tif_unknown_mode.tif"] = tiff_file(w, h, 2, 8, [rgba_assoc[..., :2].tobytes()], spp=2)
    t["tif_webp_compression.tif"] = tiff_file(w, h, 2, 8, [c], spp=3, comp=50001)
    t["tif_rgb_raw_cut.tif"] = out["tif_rgb_raw.tif"][:300]
    t["tif_rgb_deflate_cut.tif"] = out["tif_rgb_tiff_adobe_deflate.tif"][:-300]
    t["tif_rgb_tiles_deflate_cut.tif"] = t["tif_rgb_tiles_deflate.tif"][:400]
    return out


def psds(rng):
    """8-bit RGB PSDs (the PSDs lcam reads), raw and PackBits, and one cut short."""
    w, h = 9, 4
    planes = rng.integers(0, 256, (3, h, w)).astype(np.uint8)
    planes[:, 1, 2:7] = 77  # a run for PackBits
    head = b"8BPS" + struct.pack(">H", 1) + bytes(6) + struct.pack(">HIIHH", 3, h, w, 8, 3) + struct.pack(">III", 0, 0, 0)
    raw = head + struct.pack(">H", 0) + planes.tobytes()
    rows = []
    for row in planes.reshape(3 * h, w):
        packed, i = b"", 0
        while i < w:
            j = i
            while j < w and row[j] == row[i]:
                j += 1
            if j - i >= 2:
                packed += bytes([257 - (j - i), int(row[i])])
            else:
                j = i + 1
                while j < w and (j + 1 >= w or row[j] != row[j + 1]):
                    j += 1
                packed += bytes([j - i - 1]) + row[i:j].tobytes()
            i = j
        rows.append(packed)
    rle = head + struct.pack(">H", 1) + b"".join(struct.pack(">H", len(r)) for r in rows) + b"".join(rows)
    out = {"psd_rgb_raw.psd": raw, "psd_rgb_packbits.psd": rle, "psd_rgb_cut.psd": raw[:-5]}
    out.update(psd_modes(np.random.default_rng(20261209)))
    return out


def psd_file(w, h, colour, depth, planes, channels=None, compression=0, colour_data=b"", resources=b"",
             layers=b"", rows=None, version=1):
    """A PSD of the given channel planes (each h rows of bytes), raw or PackBits (`rows`: the
    packed rows of every channel in order)."""
    channels = len(planes) if channels is None else channels
    head = b"8BPS" + struct.pack(">H", version) + bytes(6) + struct.pack(">HIIHH", channels, h, w, depth, colour)
    head += struct.pack(">I", len(colour_data)) + colour_data + struct.pack(">I", len(resources)) + resources
    head += struct.pack(">I", len(layers)) + layers
    if rows is None:
        return head + struct.pack(">H", compression) + b"".join(b"".join(p) for p in planes)
    return head + struct.pack(">H", 1) + b"".join(struct.pack(">H", len(r)) for r in rows) + b"".join(rows)


def psd_modes(rng):
    """PSDs of every mode Pillow reads (bitmap, grey, duotone, multichannel, indexed, RGB with
    and without alpha, CMYK), resources and layers skipped, PackBits runs past a row (dropped),
    and Pillow's refusals (16 bits, too few channels, other compressions, version 2, no pixels)."""
    out = {}
    w, h = 7, 3
    plane = lambda: [bytes(int(v) for v in rng.integers(0, 256, w)) for _ in range(h)]
    out["psd_bitmap.psd"] = psd_file(w, h, 0, 1, [[bytes(int(v) for v in rng.integers(0, 256, 1)) for _ in range(h)]])
    out["psd_grey.psd"] = psd_file(w, h, 1, 8, [plane(), plane()])  # grey and an extra channel
    out["psd_duotone.psd"] = psd_file(w, h, 8, 8, [plane()])
    out["psd_multichannel.psd"] = psd_file(w, h, 7, 8, [plane(), plane(), plane()])
    pal = bytes(int(v) for v in rng.integers(0, 256, 768))
    out["psd_indexed.psd"] = psd_file(w, h, 2, 8, [plane()], colour_data=pal)
    out["psd_indexed_no_palette.psd"] = psd_file(w, h, 2, 8, [plane()], colour_data=pal[:300])
    out["psd_rgba.psd"] = psd_file(w, h, 3, 8, [plane() for _ in range(4)])
    out["psd_rgb_5_channels.psd"] = psd_file(w, h, 3, 8, [plane() for _ in range(5)])
    out["psd_cmyk.psd"] = psd_file(w, h, 4, 8, [plane() for _ in range(4)])
    # Five channels: Pillow reads a row-length table of four (so the rows start 6 bytes early).
    out["psd_cmyk_extra_channel_packbits.psd"] = psd_file(w, h, 4, 8, [plane() for _ in range(5)],
                                                   rows=[bytes([w - 1]) + plane()[0] for _ in range(5 * h)])
    out["psd_lab.psd"] = psd_file(w, h, 9, 8, [plane() for _ in range(3)])
    resources = b"8BIM" + struct.pack(">H", 1005) + b"\x03abc" + struct.pack(">I", 3) + b"xyz\0"
    layers = struct.pack(">I", 6) + bytes(6)
    out["psd_resources_layers.psd"] = psd_file(w, h, 3, 8, [plane() for _ in range(3)], resources=resources, layers=layers)
    # PackBits: a run of 9 into rows of 7 (the rest dropped), a no-op, a literal past the row.
    runs = [bytes([257 - 9, 5]), bytes([0x80, 257 - 7, 6]), bytes([8]) + bytes(range(9))]
    out["psd_packbits_past_row.psd"] = psd_file(w, h, 1, 8, [plane()], rows=runs)
    out["psd_packbits_cut.psd"] = psd_file(w, h, 1, 8, [plane()], rows=runs)[:-3]
    out["psd_16_bit.psd"] = psd_file(w, h, 3, 16, [[r + r for r in plane()] for _ in range(3)])
    out["psd_too_few_channels.psd"] = psd_file(w, h, 4, 8, [plane() for _ in range(3)])
    out["psd_compression_2.psd"] = psd_file(w, h, 1, 8, [plane()], compression=2)
    out["psd_version_2.psd"] = psd_file(w, h, 1, 8, [plane()], version=2)
    out["psd_no_pixels.psd"] = psd_file(0, h, 1, 8, [[b""] * h])
    out["psd_resources_cut.psd"] = psd_file(w, h, 1, 8, [plane()], resources=resources)[:60]
    return out


def webps(rng):
    """WebPs written by this Pillow: lossy, lossless, with transparent pixels, animated (the
    first frame is read), cut short."""
    out = {}
    a = rng.integers(0, 256, (13, 17, 4)).astype(np.uint8)
    a[:4, :, 3] = 0  # fully transparent rows keep their colour in the file (exact)
    rgba = Image.frombytes("RGBA", (17, 13), a.tobytes())
    for name, im, kw in (("webp_lossy.webp", rgba.convert("RGB"), {"quality": 80}),
                         ("webp_lossless.webp", rgba.convert("RGB"), {"lossless": True}),
                         ("webp_alpha_exact.webp", rgba, {"lossless": True, "exact": True}),
                         ("webp_alpha_lossy.webp", rgba, {"quality": 60})):
        b = io.BytesIO()
        im.save(b, "WEBP", **kw)
        out[name] = b.getvalue()
    b = io.BytesIO()
    second = Image.frombytes("RGB", (17, 13), (255 - a[..., :3]).tobytes())
    rgba.convert("RGB").save(b, "WEBP", save_all=True, append_images=[second], lossless=True)
    out["webp_animated.webp"] = b.getvalue()
    out["webp_cut.webp"] = out["webp_lossy.webp"][:-20]
    return out


def tga_file(w, h, kind, depth, data, flags=0x20, cmap=b"", first=0, entries=0, entry_bits=0, ident=b""):
    """A TGA: image type `kind` (1-3, 9-11), the colour map (if any) and the data as given."""
    head = struct.pack("<BBBHHBHHHHBB", len(ident), 1 if entry_bits else 0, kind, first, entries, entry_bits, 0, 0, w, h, depth, flags)
    return head + ident + cmap + data


def tgas(rng):
    """TGAs as Pillow reads them: rows either way up and mirrored, RLE literals crossing rows,
    1-bit grey, colour maps with a first index, on grey images too; Pillow's refusals."""
    out = {}
    w, h = 7, 5
    rgb = bytes(int(v) for v in rng.integers(0, 256, 3 * w * h))
    out["tga_24_bottom_up.tga"] = tga_file(w, h, 2, 24, rgb, flags=0)
    out["tga_24_top_down.tga"] = tga_file(w, h, 2, 24, rgb)
    out["tga_24_mirrored.tga"] = tga_file(w, h, 2, 24, rgb, flags=0x30, ident=b"id field")
    out["tga_16.tga"] = tga_file(w, h, 2, 16, rgb[: 2 * w * h])
    out["tga_16_short.tga"] = tga_file(2, 1, 2, 16, rgb[:4])  # RGBA in 22 bytes: Pillow's footer seek fails
    grey = bytes(int(v) for v in rng.integers(0, 256, w * h))
    # RLE: a literal of 10 pixels crossing the first row, a run, a literal finishing the image.
    rle = bytes([9]) + grey[:10] + bytes([0x83, 200]) + bytes([w * h - 15]) + grey[: w * h - 14]
    out["tga_grey_rle_literal_crossing.tga"] = tga_file(w, h, 11, 8, rle)
    out["tga_grey_rle_run_crossing.tga"] = tga_file(w, h, 11, 8, bytes([0x80 | 9, 7]) + rle)  # refused: overrun
    bits = bytes(int(v) for v in rng.integers(0, 256, h))  # one byte per row of 7 pixels
    out["tga_grey_1bit.tga"] = tga_file(w, h, 3, 1, bits)
    out["tga_grey_1bit_rle.tga"] = tga_file(w, h, 11, 1, bytes([0x84]) + bits)  # Pillow never finishes
    cmap16 = b"".join(struct.pack("<H", int(v)) for v in rng.integers(0, 65536, 12))
    idx = bytes(int(v) for v in rng.integers(0, 18, w * h))  # indices 0-2 (black) and past 14 (black)
    out["tga_cmap16_first_index.tga"] = tga_file(w, h, 1, 8, idx, cmap=cmap16, first=3, entries=12, entry_bits=16)
    cmap24 = bytes(int(v) for v in rng.integers(0, 256, 3 * 16))
    out["tga_grey_with_cmap.tga"] = tga_file(w, h, 3, 8, idx, cmap=cmap24, entries=16, entry_bits=24)
    out["tga_24_with_cmap.tga"] = tga_file(w, h, 2, 24, rgb, cmap=cmap24, entries=16, entry_bits=24)  # refused
    out["tga_cmap_300.tga"] = tga_file(w, h, 1, 8, idx, cmap=bytes(900), entries=300, entry_bits=24)  # refused
    out["tga_cmap_without_map.tga"] = tga_file(w, h, 1, 8, idx)  # refused
    out["tga_24_cut.tga"] = out["tga_24_top_down.tga"][:-1]
    return out


def bmp_file(w, h, bits, data, palette=b"", comp=0, colors=0, header=40, topdown=False, masks=None, offset=None):
    """A BMP with the given info header size (12: OS/2), rows `data` as they are in the file."""
    if header == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        info = struct.pack("<IiIHHIIiiII", header, w, (-h) & 0xFFFFFFFF if topdown else h, 1, bits, comp, len(data), 0, 0, colors, 0)
        if header > 40:
            info += (struct.pack("<IIII", *(masks or (0, 0, 0, 0))) + bytes(header))[: header - 40]
        elif masks:
            info += struct.pack("<III", *masks[:3])
    at = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", at + len(data), 0, 0, at if offset is None else offset) + info + palette + data


def bmp_rows(rows, bits):
    """Rows of values packed at `bits` bits (MSB first), each padded to 4 bytes, bottom row first."""
    out = b""
    for row in rows[::-1]:
        v = 0
        for x in row:
            v = (v << bits) | int(x)
        n = len(row) * bits
        b = (v << ((-n) % 8)).to_bytes((n + 7) // 8, "big") if n else b""
        out += b + bytes((-len(b)) % 4)
    return out


def bmps(rng):
    """BMPs as Pillow reads them: rows either way up, RLE, 16-bit scaling, bitfields, OS/2
    headers, grey-ramp palettes and their quirks, cuts."""
    out = {}
    w, h = 11, 6
    pal16 = bytes(int(v) for v in rng.integers(0, 256, 64))  # 16 BGRX entries
    idx = rng.integers(0, 16, (h, w))
    rgb = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    bgr = bytes(b"".join(rgb[y, :, ::-1].tobytes() + bytes((-3 * w) % 4) for y in range(h - 1, -1, -1)))
    out["bmp_24.bmp"] = bmp_file(w, h, 24, bgr)
    top = bytes(b"".join(rgb[y, :, ::-1].tobytes() + bytes((-3 * w) % 4) for y in range(h)))
    out["bmp_24_top_down.bmp"] = bmp_file(w, h, 24, top, topdown=True)
    out["bmp_24_cut_padding.bmp"] = out["bmp_24.bmp"][:-1]  # the last row's padding: read
    out["bmp_24_cut_pixel.bmp"] = out["bmp_24.bmp"][:-4]  # its last pixel: truncated
    out["bmp_4.bmp"] = bmp_file(w, h, 4, bmp_rows(idx, 4), pal16)
    out["bmp_8_os2.bmp"] = bmp_file(w, h, 8, bmp_rows(idx, 8), b"".join(pal16[4 * i:4 * i + 3] for i in range(16)) + bytes(3 * 240), header=12)
    v16 = rng.integers(0, 65536, (h, w))
    rows16 = b"".join(b"".join(struct.pack("<H", int(v)) for v in v16[y]) + bytes((-2 * w) % 4) for y in range(h))
    out["bmp_16_555.bmp"] = bmp_file(w, h, 16, rows16)
    out["bmp_16_565.bmp"] = bmp_file(w, h, 16, rows16, comp=3, masks=(0xF800, 0x7E0, 0x1F))
    out["bmp_16_444_bitfields.bmp"] = bmp_file(w, h, 16, rows16, comp=3, masks=(0xF00, 0xF0, 0xF))  # Pillow: unsupported
    rows32 = bytes(int(v) for v in rng.integers(0, 256, 4 * w * h))
    out["bmp_32.bmp"] = bmp_file(w, h, 32, rows32)
    out["bmp_32_abgr.bmp"] = bmp_file(w, h, 32, rows32, comp=3, header=56, masks=(0xFF000000, 0xFF0000, 0xFF00, 0xFF))
    # RLE8: a run, an absolute run (padded to an even offset), a delta, end of line, end of bitmap.
    rle8 = bytes([3, 5, 0, 3, 1, 2, 3, 0, 0, 2, 2, 0, 4, 9, 0, 0]) + bytes([11, 7, 0, 0]) * (h - 1) + bytes([0, 1])
    out["bmp_rle8.bmp"] = bmp_file(w, h, 8, rle8, pal16 + bytes(4 * 240), comp=1)
    out["bmp_rle8_early_end.bmp"] = bmp_file(w, h, 8, rle8[:20] + bytes([0, 1]), pal16 + bytes(4 * 240), comp=1)
    rle4 = bytes([5, 0x12, 0, 5, 0x34, 0x50, 0, 0, 6, 0xAB, 0, 0]) + bytes([11, 0xC3, 0, 0]) * (h - 1) + bytes([0, 1])
    out["bmp_rle4.bmp"] = bmp_file(w, h, 4, rle4, pal16, comp=2)
    out["bmp_rle4_top_down.bmp"] = bmp_file(w, h, 4, rle4, pal16, comp=2, topdown=True)
    # Palettes: black and white at 8 bits (Pillow's mode 1, whose rows it reads as bits); a
    # grey ramp at 4 bits (mode L, rows read as bytes, the file mapped); 300 colours (refused).
    bw = b"\0\0\0\0\xff\xff\xff\0"
    out["bmp_8_black_white.bmp"] = bmp_file(w, h, 8, bmp_rows(idx % 2, 8), bw, colors=2)
    ramp = b"".join(bytes([i, i, i, 0]) for i in range(16))
    out["bmp_4_grey_ramp.bmp"] = bmp_file(w, h, 4, bmp_rows(idx, 4) + bytes(64), ramp)
    out["bmp_8_300_colours.bmp"] = bmp_file(w, h, 8, bmp_rows(idx, 8), pal16 * 75, colors=300)
    out["bmp_offset_at_palette.bmp"] = bmp_file(w, h, 4, bmp_rows(idx, 4), pal16, offset=54)
    return out


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_filtered(samples, depth, filters):
    """Rows of samples (h, w * channels) packed at `depth` bits, each behind its filter type
    (cycling through `filters`) and filtered by it."""
    h = samples.shape[0]
    rows = []
    for r in samples:
        if depth == 16:
            rows.append(b"".join(struct.pack(">H", int(v)) for v in r))
        elif depth == 8:
            rows.append(bytes(int(v) for v in r))
        else:
            v = 0
            for x in r:
                v = (v << depth) | int(x)
            n = len(r) * depth
            rows.append((v << ((-n) % 8)).to_bytes((n + 7) // 8, "big") if n else b"")
    return rows


def png_filter(rows, bpp, filters):
    out, prev = b"", bytes(len(rows[0])) if rows else b""
    for k, r in enumerate(rows):
        ft = filters[k % len(filters)]
        f = bytearray(len(r))
        for i in range(len(r)):
            a = r[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = (0, a, b, (a + b) // 2, a if pa <= pb and pa <= pc else (b if pb <= pc else c))[ft]
            f[i] = (r[i] - pred) & 255
        out += bytes([ft]) + bytes(f)
        prev = r
    return out


def png_raw(samples, colour, depth, interlace, filters=(0, 1, 2, 3, 4)):
    """The filtered image data (before zlib) of samples (h, w, channels), Adam7 or not."""
    ch = samples.shape[2]
    bpp = max(1, depth * ch // 8)
    if not interlace:
        return png_filter(png_filtered(samples.reshape(samples.shape[0], -1), depth, filters), bpp, filters)
    raw = b""
    for x0, y0, dx, dy in ADAM7:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            raw += png_filter(png_filtered(sub.reshape(sub.shape[0], -1), depth, filters), bpp, filters)
    return raw


def png_file(w, h, colour, depth, data, interlace=0, before=b"", after=b"", ihdr_extra=None):
    """A PNG of the given IHDR, with `before` chunks ahead of IDAT(data) and `after` chunks
    between it and IEND."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0 if ihdr_extra is None else ihdr_extra, interlace)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + before + png_chunk(b"IDAT", data) + after
            + png_chunk(b"IEND", b""))


def pngs(rng):
    """PNGs as Pillow reads them: every bit depth and colour type, Adam7, all five filters,
    palettes shorter than the indices, the chunk rules (CRCs, chunks too short, APNG frame
    controls), and damaged or cut image data."""
    out = {}
    a = rng.integers(0, 1024, (9, 14)).astype(np.uint16)
    a[0, :6] = [0, 1, 254, 255, 256, 65535]
    im = Image.frombytes("I;16", (14, 9), a.astype("<u2").tobytes())
    b = io.BytesIO()
    im.save(b, "PNG")
    plain = b.getvalue()
    # A tRNS chunk (grey 300 transparent) after IHDR, written here: Pillow 9.4 cannot save one.
    trns = b"tRNS" + struct.pack(">H", 300)
    chunk = struct.pack(">I", 2) + trns + struct.pack(">I", zlib.crc32(trns))
    out["png_grey16.png"] = plain
    out["png_grey16_transparent.png"] = plain[:33] + chunk + plain[33:]
    rng = np.random.default_rng(20261207)  # the cases below: their own draws, the other formats' unchanged
    # Every depth and colour type, straight and Adam7 (7x6: some passes hold one column).
    w, h = 7, 6
    for colour, depths in ((0, (1, 2, 4, 8, 16)), (2, (8, 16)), (3, (1, 2, 4, 8)), (4, (8, 16)), (6, (8, 16))):
        ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
        for depth in depths:
            s = rng.integers(0, 1 << depth, (h, w, ch))
            plte = png_chunk(b"PLTE", bytes(int(v) for v in rng.integers(0, 256, 3 << depth))) if colour == 3 else b""
            for il in (0, 1):
                raw = png_raw(s, colour, depth, il)
                out[f"png_c{colour}_d{depth}{'_adam7' if il else ''}.png"] = png_file(w, h, colour, depth, zlib.compress(raw), il, plte)
    # Palettes: indices past a short PLTE (black), no PLTE (black), 256 entries and a byte
    # (read), 266 entries (refused).
    idx = rng.integers(0, 16, (h, w, 1))
    raw = zlib.compress(png_raw(idx, 3, 4, 0))
    out["png_palette_short.png"] = png_file(w, h, 3, 4, raw, 0, png_chunk(b"PLTE", bytes(range(10, 25))))
    out["png_palette_missing.png"] = png_file(w, h, 3, 4, raw)
    out["png_palette_769.png"] = png_file(w, h, 3, 4, raw, 0, png_chunk(b"PLTE", bytes(i % 251 for i in range(769))))
    out["png_palette_800.png"] = png_file(w, h, 3, 4, raw, 0, png_chunk(b"PLTE", bytes(i % 251 for i in range(800))))
    # The chunk rules before the image data.
    rgb = rng.integers(0, 256, (h, w, 3))
    data = zlib.compress(png_raw(rgb, 2, 8, 0))
    good = png_file(w, h, 2, 8, data)
    out["png_rgb.png"] = good
    bad_crc = bytearray(good)
    bad_crc[29] ^= 1  # IHDR's CRC
    out["png_ihdr_bad_crc.png"] = bytes(bad_crc)
    gama = png_chunk(b"gAMA", struct.pack(">I", 45455))
    out["png_gama_bad_crc.png"] = png_file(w, h, 2, 8, data, 0, gama[:-1] + bytes([gama[-1] ^ 1]))
    out["png_gama_short.png"] = png_file(w, h, 2, 8, data, 0, png_chunk(b"gAMA", b"\0\0"))
    out["png_trns_short.png"] = png_file(w, h, 2, 8, data, 0, png_chunk(b"tRNS", b"\0\0\0\0"))
    out["png_phys_short_after.png"] = png_file(w, h, 2, 8, data, after=png_chunk(b"pHYs", b"\0" * 8))
    out["png_private_chunk.png"] = png_file(w, h, 2, 8, data, 0, png_chunk(b"prVt", b"hello"), png_chunk(b"prVt", b"again"))
    out["png_bad_chunk_type.png"] = png_file(w, h, 2, 8, data, 0, png_chunk(b"pr t", b"x"))
    out["png_iccp_method.png"] = png_file(w, h, 2, 8, data, 0, png_chunk(b"iCCP", b"name\0\x05xx"))
    out["png_iccp_garbage.png"] = png_file(w, h, 2, 8, data, 0, png_chunk(b"iCCP", b"name\0\0not zlib"))
    out["png_ztxt_method.png"] = png_file(w, h, 2, 8, data, 0, png_chunk(b"zTXt", b"k\0\x01zz"))
    out["png_itxt_garbage.png"] = png_file(w, h, 2, 8, data, 0, png_chunk(b"iTXt", b"k\0\x01\0en\0\0not zlib"))
    # Compressed text of exactly 1 MiB (read) and of a byte more (refused: MAX_TEXT_CHUNK).
    for name, k in (("png_ztxt_1mib.png", 1 << 20), ("png_ztxt_over_1mib.png", (1 << 20) + 1)):
        out[name] = png_file(w, h, 2, 8, data, 0, png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"t" * k, 9)))
    out["png_filter_category.png"] = png_file(w, h, 2, 8, data, ihdr_extra=1)
    out["png_no_ihdr.png"] = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")
    out["png_iend_first.png"] = good[:33] + png_chunk(b"IEND", b"")
    out["png_depth_7.png"] = png_file(w, h, 2, 7, data)
    # The image data: split over chunks (one empty, one DDAT), extra data after the last row,
    # a zlib stream ending early (rows after it stay black), an unknown filter type, damage.
    parts = [data[:5], b"", data[5:20], data[20:]]
    split = good[:33] + b"".join(png_chunk(b"DDAT" if k == 2 else b"IDAT", q) for k, q in enumerate(parts)) + png_chunk(b"IEND", b"")
    out["png_idat_split.png"] = split
    raw = png_raw(rgb, 2, 8, 0)
    out["png_extra_data.png"] = png_file(w, h, 2, 8, zlib.compress(raw + b"\0" * 40))
    out["png_stream_ends_early.png"] = png_file(w, h, 2, 8, zlib.compress(raw[: 3 * (1 + 3 * w)]))
    out["png_filter_5.png"] = png_file(w, h, 2, 8, zlib.compress(b"\x05" + raw[1:]))
    out["png_adler_wrong.png"] = png_file(w, h, 2, 8, data[:-1] + bytes([data[-1] ^ 1]))
    out["png_deflate_damaged.png"] = png_file(w, h, 2, 8, data[:6] + bytes([data[6] ^ 0xff]) + data[7:])
    end = len(good) - 12  # IEND
    out["png_cut_in_adler.png"] = good[: end - 4 - 2]  # the CRC and two adler bytes gone: read
    out["png_cut_in_rows.png"] = good[: end - 4 - 12]  # refused: the last row's data is not there
    out["png_cut_trailing_chunk.png"] = png_file(w, h, 2, 8, data, after=png_chunk(b"tEXt", b"k\0" + b"v" * 30))[: end + 20]
    # APNG: the first frame's bounds place the image data; sequence numbers are checked.
    small = zlib.compress(png_raw(rgb[:3, :4], 2, 8, 0))
    actl = png_chunk(b"acTL", struct.pack(">II", 1, 0))
    fctl = lambda seq, fw, fh, x, y: png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, fw, fh, x, y, 1, 10, 0, 0))
    out["png_apng_frame_offset.png"] = png_file(w, h, 2, 8, small, 0, actl + fctl(0, 4, 3, 2, 1))
    out["png_apng_frame_outside.png"] = png_file(w, h, 2, 8, small, 0, actl + fctl(0, 4, 3, 5, 1))
    out["png_apng_bad_sequence.png"] = png_file(w, h, 2, 8, small, 0, actl + fctl(1, 4, 3, 0, 0))
    out["png_apng_default_image.png"] = png_file(w, h, 2, 8, data, 0, actl, fctl(0, 4, 3, 0, 0) +
                                                 png_chunk(b"fdAT", struct.pack(">I", 1) + small))
    return out


def jp2_boxes(d, start=12):
    """(offset, length, type) of the boxes from START up to the end of D."""
    out, i = [], start
    while i + 8 <= len(d):
        n, t = struct.unpack(">I4s", d[i:i + 8])
        if n < 8:
            break
        out.append((i, n, t))
        i += n
    return out


def jp2_header_edit(d, edit):
    """D with its jp2h box's contents replaced by EDIT(contents)."""
    o, n, _ = next(b for b in jp2_boxes(d) if b[2] == b"jp2h")
    inner = edit(d[o + 8:o + n])
    return d[:o] + struct.pack(">I4s", 8 + len(inner), b"jp2h") + inner + d[o + n:]


def jp2_colr(d, enumcs, meth=1):
    """D with the enumerated colour space of its colr box set to ENUMCS."""
    def edit(inner):
        k = inner.find(b"colr")
        return inner[:k + 4] + bytes([meth]) + inner[k + 5:k + 7] + struct.pack(">I", enumcs) + inner[k + 11:]
    return jp2_header_edit(d, edit)


def jp2_pclr(d, colours, bits=7):
    """D (one component) with a palette box of COLOURS (tuples of one size) after its colr box."""
    npc = len(colours[0])
    body = struct.pack(">HB", len(colours), npc) + bytes([bits] * npc) + b"".join(bytes(c) for c in colours)
    return jp2_header_edit(d, lambda inner: inner + struct.pack(">I4s", 8 + len(body), b"pclr") + body)


def jpeg2000s(rng):
    """JPEG 2000 as Pillow 13 reads it through OpenJPEG: every mode Pillow writes, J2K and JP2,
    tiles and image offsets, lossy and lossless; the colour spaces of the colr box (sYCC
    converted, unknown ones guessed, grey data in an RGB image placed x0 bytes in), palettes
    (P and PA through Pillow's deduplicating palette), CMYK, and damaged or cut files."""
    out = {}
    a = rng.integers(0, 256, (19, 27, 4)).astype(np.uint8)
    y, x = np.mgrid[0:45, 0:50]
    smooth = np.stack([(x * 5 + y) % 256, (y * 5) % 256, (x * y) % 256], -1).astype(np.uint8)

    def save(im, **kw):
        b = io.BytesIO()
        im.save(b, "JPEG2000", **kw)
        return b.getvalue()

    rgb = Image.fromarray(a[..., :3], "RGB")
    out["j2k_rgb.j2k"] = save(rgb, no_jp2=True)
    out["j2k_rgb.jp2"] = save(rgb)
    out["j2k_l.jp2"] = save(rgb.convert("L"))
    out["j2k_la.jp2"] = save(Image.fromarray(a[..., :2].copy(), "LA"))
    out["j2k_rgba.jp2"] = save(Image.fromarray(a, "RGBA"))
    out["j2k_i16.jp2"] = save(Image.fromarray(rng.integers(0, 700, (7, 9)).astype(np.uint16)).convert("I;16"))
    out["j2k_lossy.jp2"] = save(Image.fromarray(smooth, "RGB"), irreversible=True, quality_mode="rates", quality_layers=[30])
    out["j2k_tiles_offset.jp2"] = save(rgb, tile_size=(8, 8), tile_offset=(1, 2), offset=(3, 4))
    out["j2k_layers_resolutions.j2k"] = save(rgb, no_jp2=True, quality_layers=[20, 5], num_resolutions=3,
                                             progression="RPCL")
    out["j2k_signed.j2k"] = save(rgb, no_jp2=True, signed=True)
    out["j2k_comment.j2k"] = save(rgb, no_jp2=True, comment=b"lcam")
    # Colour spaces: sYCC converted with Pillow's fixed-point YCbCr -> RGB; 0 (bilevel) and 3
    # unknown, so guessed from the component count; grey (17) in a three-component image fails,
    # in a two-component RGB-declared one reads through Pillow's grey unpacker.
    out["j2k_sycc.jp2"] = jp2_colr(out["j2k_rgb.jp2"], 18)
    out["j2k_colr_bilevel.jp2"] = jp2_colr(out["j2k_rgb.jp2"], 0)
    out["j2k_colr_3.jp2"] = jp2_colr(out["j2k_rgb.jp2"], 3)
    out["j2k_colr_icc.jp2"] = jp2_colr(out["j2k_rgb.jp2"], 0, meth=2)
    out["j2k_colr_grey_rgb.jp2"] = jp2_colr(out["j2k_rgb.jp2"], 17)
    tiled_la = save(Image.fromarray(a[..., :2].copy(), "LA"), tile_size=(10, 8), offset=(3, 0), tile_offset=(0, 0))
    out["j2k_grey_in_rgb_x0.jp2"] = jp2_header_edit(
        tiled_la, lambda inner: inner[:inner.find(b"ihdr") + 12] + struct.pack(">H", 3) + inner[inner.find(b"ihdr") + 14:])
    # Palettes: P and PA (the colours deduplicated as Pillow's palette does), CMYK.
    grey = save(Image.fromarray((a[..., 0] % 5).astype(np.uint8), "L"))
    colours = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(5)]
    out["j2k_palette.jp2"] = jp2_pclr(jp2_colr(grey, 16), colours)
    out["j2k_palette_duplicates.jp2"] = jp2_pclr(jp2_colr(grey, 16), [colours[0], colours[1], colours[0], colours[2], colours[3]])
    out["j2k_palette_rgba.jp2"] = jp2_pclr(jp2_colr(grey, 16), [c + (128,) for c in colours])
    out["j2k_palette_grey_colr.jp2"] = jp2_pclr(grey, colours)  # colr 17: stays L
    la = save(Image.fromarray(np.stack([a[..., 0] % 5, a[..., 1]], -1).astype(np.uint8), "LA"))
    out["j2k_palette_alpha.jp2"] = jp2_pclr(jp2_colr(la, 16), colours)
    out["j2k_cmyk.jp2"] = jp2_colr(out["j2k_rgba.jp2"], 12)
    # Damage: a SIZ segment too short, box lengths, a cut codestream, a cut header.
    d = bytearray(out["j2k_rgb.j2k"])
    d[4:6] = struct.pack(">H", 30)
    out["j2k_siz_short.j2k"] = bytes(d)
    d = bytearray(out["j2k_rgb.jp2"])
    o, n, _ = next(b for b in jp2_boxes(d) if b[2] == b"jp2h")
    d[o:o + 4] = struct.pack(">I", 4)
    out["j2k_box_length_4.jp2"] = bytes(d)
    out["j2k_cut_half.jp2"] = out["j2k_rgb.jp2"][:len(out["j2k_rgb.jp2"]) // 2]
    out["j2k_cut_end.j2k"] = out["j2k_rgb.j2k"][:-2]
    out["j2k_cut_header.jp2"] = out["j2k_rgb.jp2"][:60]
    out["j2k_signature_only.jp2"] = out["j2k_rgb.jp2"][:12]
    return out


def pcx_rle(data):
    """PCX run-length coding: runs of up to 63, and any byte of 0xC0 or more as a run of one."""
    out, i = bytearray(), 0
    while i < len(data):
        k = 1
        while i + k < len(data) and data[i + k] == data[i] and k < 63:
            k += 1
        out += bytes([0xC0 | k, data[i]]) if k > 1 or data[i] >= 0xC0 else bytes([data[i]])
        i += k
    return bytes(out)


def pcx_file(w, h, bits, planes, lines, version=5, stride=None, palette16=b"", tail=b"", box=None):
    """A PCX of W x H: the header (STRIDE: the bytes-per-line field), then LINES run-length coded."""
    hdr = bytearray(128)
    hdr[0:4] = bytes([10, version, 1, bits])
    struct.pack_into("<HHHH", hdr, 4, *(box or (0, 0, w - 1, h - 1)))
    hdr[16:16 + len(palette16)] = palette16
    hdr[65] = planes
    struct.pack_into("<H", hdr, 66, (w * bits + 7) // 8 if stride is None else stride)
    return bytes(hdr) + b"".join(pcx_rle(line) for line in lines) + tail


def pcxs(rng):
    """PCX as Pillow 13 reads it: what Pillow writes (1, L, P, RGB), 16-colour images of 2 and 4
    one-bit planes, grey with a grey-ramp palette at the end, strides the header gets wrong,
    and its refusals: other layouts, a run past a line, data ending early; headers Pillow gives
    up on, which its TGA reader may then take."""
    out = {}
    a = rng.integers(0, 256, (9, 14, 3)).astype(np.uint8)
    a[2:5, 3:9] = a[0, 0]  # runs
    for mode in ("1", "L", "P", "RGB"):
        b = io.BytesIO()
        Image.fromarray(a).convert(mode).save(b, "PCX")
        out[f"pcx_pillow_{mode.lower()}.pcx"] = b.getvalue()
    w, h = 13, 5
    pal16 = bytes(int(v) for v in rng.integers(0, 256, 48))
    for planes in (2, 4):
        stride = (w + 7) // 8 + 1  # even
        lines = [bytes(int(v) for v in rng.integers(0, 256, stride * planes)) for _ in range(h)]
        out[f"pcx_planes_{planes}.pcx"] = pcx_file(w, h, 1, planes, lines, version=2, stride=stride, palette16=pal16)
    grey = [bytes(int(v) for v in rng.integers(0, 256, 14)) for _ in range(h)]
    ramp = b"\x0c" + b"".join(bytes([i, i, i]) for i in range(256))
    colours = b"\x0c" + bytes(int(v) for v in rng.integers(0, 256, 768))
    out["pcx_grey_ramp_palette.pcx"] = pcx_file(w, h, 8, 1, grey, stride=14, tail=ramp)
    out["pcx_8bit_palette.pcx"] = pcx_file(w, h, 8, 1, grey, stride=14, tail=colours)
    out["pcx_grey_no_palette_marker.pcx"] = pcx_file(w, h, 8, 1, grey, stride=14, tail=b"\x0b" + colours[1:])
    out["pcx_grey_file_short.pcx"] = pcx_file(w, h, 8, 1, grey, stride=14)  # < 769 bytes: refused
    odd = [bytes(int(v) for v in rng.integers(0, 256, 13)) for _ in range(h)]
    out["pcx_stride_odd_trusted.pcx"] = pcx_file(w, h, 8, 1, odd, stride=13, tail=colours)
    out["pcx_stride_field_wrong.pcx"] = pcx_file(w, h, 8, 1, grey, stride=40, tail=colours)  # data rows of 14
    rgb = [bytes(int(v) for v in rng.integers(0, 256, 42)) for _ in range(h)]
    out["pcx_rgb_planes.pcx"] = pcx_file(w, h, 8, 3, rgb, stride=14)
    d = bytearray(out["pcx_rgb_planes.pcx"])
    out["pcx_cut.pcx"] = bytes(d[:-3])
    out["pcx_run_past_line.pcx"] = pcx_file(2, 2, 8, 3, [], stride=2) + bytes([0xC0 | 8, 7, 0xC0 | 6, 9]) + bytes(769)
    out["pcx_unknown_mode.pcx"] = pcx_file(w, h, 4, 1, grey, stride=14)
    out["pcx_version_2_8bit.pcx"] = pcx_file(w, h, 8, 1, grey, version=2, stride=14, tail=colours)
    out["pcx_bad_box.pcx"] = pcx_file(w, h, 8, 1, grey, stride=14, tail=colours, box=(5, 0, 4, 4))
    out["pcx_offset_box.pcx"] = pcx_file(w, h, 8, 1, grey, stride=14, tail=colours, box=(100, 7, 112, 11))
    # Pillow's TGA takes what its PCX reader gives up on: a 2x2 grey TGA with a 10-byte ID of
    # 32 bytes (byte 1, the TGA colour map type, is PCX version 0), and a 68-byte one with an
    # empty PCX box.
    out["pcx_short_is_tga.pcx"] = struct.pack("<BBBHHBHHHHBB", 10, 0, 3, 0, 0, 0, 0, 0, 2, 2, 8, 0x20) + bytes(10) + bytes([1, 2, 3, 4])
    # (the TGA colour map's first index, unused without a map, is the PCX box's left edge: 5 > 0)
    out["pcx_bad_box_is_tga.pcx"] = (struct.pack("<BBBHHBHHHHBB", 10, 0, 3, 0x500, 0, 0, 0, 0, 5, 10, 8, 0x20) + bytes(10) +
                                     bytes(range(50)))
    return out


def cur_file(entries):
    """A cursor: the directory (width, height, bitmap; the entry's offset unless given), then
    the bitmaps."""
    head = struct.pack("<HHH", 0, 2, len(entries))
    at = 6 + 16 * len(entries)
    directory, body = b"", b""
    for e in entries:
        w, h, data = e[:3]
        offset = e[3] if len(e) > 3 else at + len(body)
        directory += struct.pack("<BBBBHHII", w % 256, h % 256, 0, 0, 1, 2, len(data), offset)
        body += data
    return head + directory + body


def curs(rng):
    """Cursors as Pillow 13 reads them: the bitmap at half its height, black-and-white and grey
    ones through the top half (the AND mask, read at the image's depth) masking the bottom one,
    the choice among entries, a height Pillow cannot halve, and the headers it gives up on, which
    its TGA reader then takes."""
    out = {}
    w, h = 11, 6
    grey_pal = b"".join(bytes([i, i, i, 0]) for i in range(256))
    colour_pal = bytes(int(v) for v in rng.integers(0, 256, 1024))
    rows8 = b"".join(bytes(int(v) for v in rng.integers(0, 256, 12)) for _ in range(2 * h))  # XOR, then more rows
    bw = b"\0\0\0\0\xff\xff\xff\0"
    rows1 = bytes(int(v) for v in rng.integers(0, 256, 4 * 2 * h))
    bgr = b"".join(bytes(int(v) for v in rng.integers(0, 256, 36)) for _ in range(h))
    bgrx = bytes(int(v) for v in rng.integers(0, 256, 4 * w * h))
    out["cur_bw_masked.cur"] = cur_file([(w, h, ico_dib(w, h, 1, rows1, bw, mask=b""))])
    out["cur_grey_masked.cur"] = cur_file([(w, h, ico_dib(w, h, 8, rows8, grey_pal, mask=b""))])
    out["cur_colour_8.cur"] = cur_file([(w, h, ico_dib(w, h, 8, rows8[:12 * h], colour_pal))])
    out["cur_24.cur"] = cur_file([(w, h, ico_dib(w, h, 24, bgr))])
    out["cur_32_at_22.cur"] = cur_file([(w, h, ico_dib(w, h, 32, bgrx))])
    out["cur_choice.cur"] = cur_file([(5, 3, ico_dib(5, 3, 24, bgr[:3 * 16])), (w, h, ico_dib(w, h, 24, bgr)),
                                      (w + 1, h, ico_dib(w, h, 8, rows8[:12 * h], colour_pal))])
    odd = bytearray(ico_dib(w, h, 8, rows8 + bytes(12), grey_pal, mask=b""))
    odd[8:12] = struct.pack("<i", 2 * h + 1)
    out["cur_grey_odd_height.cur"] = cur_file([(w, h, bytes(odd))])
    out["cur_grey_cut.cur"] = out["cur_grey_masked.cur"][:-5]
    out["cur_header_at_0.cur"] = cur_file([(w, h, ico_dib(w, h, 24, bgr), 0)])
    out["cur_no_entries.cur"] = cur_file([])
    out["cur_offset_past_end.cur"] = cur_file([(w, h, ico_dib(w, h, 24, bgr), 100000)])
    # A header Pillow's CUR reader gives up on, read by its TGA reader: no entries, and a TGA of
    # 3x2 24-bit pixels (its width the entry's hotspot, as bytes 12-13).
    tga = bytearray(struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, 3, 2, 24, 0x20))
    out["cur_no_entries_is_tga.cur"] = bytes(tga) + bytes(int(v) for v in rng.integers(0, 256, 18))
    return out


def labs(rng):
    """LAB as Pillow 13 converts it (through littleCMS): a PSD in PackBits beside the raw ones."""
    w, h = 7, 3
    lab = rng.integers(0, 256, (3, h, w)).astype(np.uint8)
    rows = [bytes([w - 1]) + lab[c, y].tobytes() for c in range(3) for y in range(h)]
    return {"psd_lab_packbits.psd": psd_file(w, h, 9, 8, [[r.tobytes() for r in lab[c]] for c in range(3)], rows=rows)}


def dcxs(rng):
    """DCX as Pillow 13 opens it: the first frame of the directory, a PCX whose 8-bit palette is
    looked for at the end of the whole file (here the second frame's); no frames; a cut
    directory."""
    w, h = 13, 5
    lines = [bytes(int(v) for v in rng.integers(0, 256, 14)) for _ in range(h)]
    pal_a = b"\x0c" + bytes(int(v) for v in rng.integers(0, 256, 768))
    pal_b = b"\x0c" + bytes(int(v) for v in rng.integers(0, 256, 768))
    first = pcx_file(w, h, 8, 1, lines, stride=14, tail=pal_a)
    second = pcx_file(w, h, 8, 1, lines[::-1], stride=14, tail=pal_b)
    magic = struct.pack("<I", 0x3ADE68B1)
    at = 4 + 12
    out = {"dcx_two_frames.dcx": magic + struct.pack("<III", at, at + len(first), 0) + first + second}
    out["dcx_no_frames.dcx"] = magic + struct.pack("<I", 0) + first
    out["dcx_directory_cut.dcx"] = magic + struct.pack("<I", 8)[:3]
    return out


def avifs(rng):
    """AVIF as Pillow 13 reads it (libavif 1.4's conversion at 8 bits): Pillow-written files of each
    subsampling, range, alpha (straight and premultiplied), an animation, Exif blocks Pillow takes
    and ones it gives up on; avifenc-written ones (Debian's libavif-bin) at 10 and 12 bits, grey,
    identity and YCgCo matrices, a chroma-derived one, a grid, irot/imir/clap, other encoders; cut
    files. Without avifenc, only the Pillow-written ones."""
    w, h = 23, 17
    y, x = np.mgrid[0:h, 0:w]
    smooth = np.stack([(x * 11 + y * 3) % 256, (x * 5 + y * 13) % 256, (x * 7 + y * 7 + 90) % 256], -1).astype(np.uint8)
    noise = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    rgb = ((smooth.astype(int) + noise // 4) % 256).astype(np.uint8)
    alpha = rng.integers(0, 256, (h, w, 1)).astype(np.uint8)
    rgba = Image.fromarray(np.concatenate([rgb, alpha], -1), "RGBA")
    im = Image.fromarray(rgb)

    def save(image, **kw):
        b = io.BytesIO()
        image.save(b, "AVIF", speed=9, **kw)
        return b.getvalue()

    exif6 = Image.Exif()
    exif6[0x0112] = 6  # Pillow's writer turns it into irot/imir and drops it from the block
    make = Image.Exif()
    make[0x010F] = "lcam"
    tiff = make.tobytes()[6:]
    out = {
        "avif_420.avif": save(im),
        "avif_444_q100.avif": save(im, subsampling="4:4:4", quality=100),
        "avif_422_limited.avif": save(im, subsampling="4:2:2", range="limited"),
        "avif_400.avif": save(im, subsampling="4:0:0"),
        "avif_rgba_420.avif": save(rgba),
        "avif_rgba_444_premultiplied.avif": save(rgba, subsampling="4:4:4", alpha_premultiplied=True),
        "avif_animation.avif": save(im, save_all=True, append_images=[rgba.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)], duration=50),
        "avif_exif_orientation6.avif": save(im, exif=exif6.tobytes()),
        "avif_exif.avif": save(im, exif=b"Exif\x00\x00" + tiff),
        "avif_exif_twice_prefixed.avif": save(im, exif=b"Exif\x00\x00Exif\x00\x00" + tiff),
    }
    # Exif blocks Pillow gives up on (the TIFF header is still where exif_tiff_header_offset
    # says, as libavif checks): six bytes before it that are not "Exif\0\0", or BigTIFF's
    # "II+\0", which Pillow reads as a head without room for its IFD offset.
    with_exif = out["avif_exif.avif"]
    k = with_exif.find(b"Exif\x00\x00" + tiff[:4])
    out["avif_exif_not_tiff.avif"] = with_exif[:k] + b"Exif\x00X" + with_exif[k + 6:]
    out["avif_exif_bigtiff.avif"] = with_exif[:k] + b"II+\x00\x00\x00" + with_exif[k + 6:]
    # exif_tiff_header_offset pointing elsewhere than the TIFF header: libavif >= 1.0 refuses it.
    out["avif_exif_wrong_offset.avif"] = with_exif[:k - 4] + struct.pack(">I", 2) + with_exif[k:]
    # An image sequence's movie, track and media headers carry the time of writing: zeroed, so
    # that the file's bytes do not change from run to run.
    anim = bytearray(out["avif_animation.avif"])
    for box in (b"mvhd", b"tkhd", b"mdhd"):
        k = anim.find(box)
        n = 16 if anim[k + 4] == 1 else 8
        anim[k + 8:k + 8 + n] = bytes(n)
    out["avif_animation.avif"] = bytes(anim)
    # The av1C property's monochrome flag flipped: Pillow takes its mode from the properties
    # (RGB, or L for 4:0:0) and reads that mode's rows from the decoded frame's bytes (grey, too
    # few for RGB; RGB, of which the first third make the grey image).
    for src, name in (("avif_400.avif", "avif_av1c_says_420.avif"), ("avif_420.avif", "avif_av1c_says_400.avif")):
        d = bytearray(out[src])
        k = d.find(b"av1C")
        d[k + 6] ^= 0x10
        out[name] = bytes(d)
    base = out["avif_420.avif"]
    out["avif_cut_in_boxes.avif"] = base[:200]
    out["avif_cut_in_data.avif"] = base[:len(base) - 40]
    # The colour box's reserved bits: libavif >= 1.0 refuses them, Pillow gives up on the file.
    k = base.find(b"colr")
    out["avif_colr_reserved_bits.avif"] = base[:k + 14] + bytes([base[k + 14] | 0x3f]) + base[k + 15:]
    out.update(avifenc_files(rng))
    return out


def avifenc_files(rng):
    import shutil, subprocess
    if not shutil.which("avifenc"):
        return {}
    w, h = 21, 14
    y, x = np.mgrid[0:h, 0:w]
    deep = np.stack([(x * 2900 + y * 700) % 65536, (x * 1300 + y * 3100) % 65536, (x * 1700 + y * 1900 + 9000) % 65536,
                     (x * 3001 + y * 511) % 65536], -1).astype(np.uint16)
    deep = (deep.astype(np.int64) + rng.integers(0, 8192, deep.shape)) % 65536

    def png16(a):  # a 16-bit PNG of an HxWxC array
        ctype = {1: 0, 3: 2, 4: 6}[a.shape[2]]
        raw = b"".join(b"\x00" + a[r].astype(">u2").tobytes() for r in range(a.shape[0]))
        return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", a.shape[1], a.shape[0], 16, ctype, 0, 0, 0))
                + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))

    cases = {
        "avifenc_10bit_420.avif": (3, ["-d", "10", "-y", "420"]),
        "avifenc_10bit_422_limited.avif": (3, ["-d", "10", "-y", "422", "-r", "l"]),
        "avifenc_10bit_444_alpha.avif": (4, ["-d", "10", "-y", "444"]),
        "avifenc_10bit_420_alpha_premultiplied.avif": (4, ["-d", "10", "-y", "420", "-p"]),
        "avifenc_12bit_420.avif": (3, ["-d", "12", "-y", "420"]),
        "avifenc_12bit_420_alpha.avif": (4, ["-d", "12", "-y", "420"]),
        "avifenc_12bit_422_alpha_limited.avif": (4, ["-d", "12", "-y", "422", "-r", "l"]),
        "avifenc_12bit_444.avif": (3, ["-d", "12", "-y", "444"]),
        "avifenc_8bit_422_alpha.avif": (4, ["-d", "8", "-y", "422"]),
        "avifenc_8bit_444_alpha_premultiplied.avif": (4, ["-d", "8", "-y", "444", "-p"]),
        "avifenc_grey_10bit_limited.avif": (1, ["-d", "10", "-y", "400", "-r", "l"]),
        "avifenc_grey_12bit.avif": (1, ["-d", "12", "-y", "400"]),
        "avifenc_lossless_identity.avif": (3, ["-l"]),
        "avifenc_identity_10bit.avif": (3, ["-d", "10", "-y", "444", "--cicp", "1/13/0"]),
        "avifenc_ycgco_12bit.avif": (3, ["-d", "12", "-y", "444", "--cicp", "1/13/8"]),
        "avifenc_chroma_derived_bt2020.avif": (3, ["-d", "10", "-y", "420", "--cicp", "9/16/12"]),
        "avifenc_smpte240_10bit_420.avif": (3, ["-d", "10", "-y", "420", "--cicp", "1/13/7"]),
        "avifenc_irot_imir_clap.avif": (3, ["-d", "8", "-y", "420", "--irot", "1", "--imir", "1", "--crop", "2,2,16,10"]),
        "avifenc_rav1e_10bit_422.avif": (3, ["-c", "rav1e", "-d", "10", "-y", "422"]),
    }
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (channels, args) in cases.items():
            src, dst = os.path.join(tmp, "in.png"), os.path.join(tmp, "out.avif")
            with open(src, "wb") as f:
                f.write(png16(deep[..., :channels]))
            subprocess.run(["avifenc", "-j", "1", "-s", "9", *args, src, dst], check=True, capture_output=True)
            with open(dst, "rb") as f:
                out[name] = f.read()
        # Matrices avifenc cannot write, put into an nclx box: BT.2020 constant luminance (which
        # libavif does not convert), FCC at 8 bits, YCgCo-Re at 10 bits, and the reserved 15
        # (which libavif converts with BT.601's coefficients in its own float path).
        for name, src, matrix in (("avifenc_bt2020_cl.avif", "avifenc_smpte240_10bit_420.avif", 10),
                                  ("avifenc_fcc_8bit_444.avif", "avifenc_8bit_444_alpha_premultiplied.avif", 4),
                                  ("avifenc_ycgco_re_10bit.avif", "avifenc_identity_10bit.avif", 16),
                                  ("avifenc_reserved15_10bit_420.avif", "avifenc_10bit_420.avif", 15)):
            d = out[src]
            k = d.find(b"colrnclx")
            out[name] = d[:k + 12] + struct.pack(">H", matrix) + d[k + 14:]
        # A 2x2 grid of 64x64 cells (AV1 tiles of a grid must be at least 64 pixels).
        with open(os.path.join(tmp, "in.png"), "wb") as f:
            f.write(png16(np.tile(deep[..., :3], (10, 7, 1))[:128, :128]))
        subprocess.run(["avifenc", "-j", "1", "-s", "9", "-d", "10", "-y", "420", "-g", "2x2", os.path.join(tmp, "in.png"),
                        os.path.join(tmp, "out.avif")], check=True, capture_output=True)
        with open(os.path.join(tmp, "out.avif"), "rb") as f:
            out["avifenc_grid_2x2_10bit.avif"] = f.read()
    return out


def ico_file(entries):
    """An icon of (width byte, height byte, colours, bpp, data[, size, offset]) entries, the data
    after the directory in order; size and offset default to the data's."""
    at = 6 + 16 * len(entries)
    head, body = struct.pack("<HHH", 0, 1, len(entries)), b""
    for e in entries:
        wb, hb, nc, bpp, data = e[:5]
        size = e[5] if len(e) > 5 else len(data)
        off = e[6] if len(e) > 6 else at + len(body)
        head += struct.pack("<BBBBHHII", wb, hb, nc, 0, 1, bpp, size, off)
        body += data
    return head + body


def ico_dib(w, h, bits, rows, palette=b"", comp=0, topdown=False, mask=None):
    """An icon's bitmap: an info header of twice the height, the palette, the XOR rows (bottom-up
    unless top-down) and the AND mask (all opaque unless given)."""
    info = struct.pack("<IiiHHIIiiII", 40, w, -2 * h if topdown else 2 * h, 1, bits, comp, 0, 0, 0, len(palette) // 4, 0)
    if mask is None:
        mask = bytes(((w + 31) // 32 * 4) * h)
    return info + palette + rows + mask


def icos(rng):
    """Icons as Pillow reads them: the largest image (of equal areas the least colour depth),
    PNG or bitmap frames at every depth, and the checks of the alpha and AND mask reading."""
    out = {}
    a = rng.integers(0, 256, (24, 24, 4)).astype(np.uint8)
    for mode, fmt in (("RGBA", "png"), ("RGB", "png"), ("RGBA", "bmp"), ("P", "bmp"), ("L", "bmp")):
        b = io.BytesIO()
        im = Image.fromarray(a, "RGBA").convert(mode)
        im.save(b, "ICO", sizes=[(16, 16), (24, 24)], **({"bitmap_format": "bmp"} if fmt == "bmp" else {}))
        out[f"ico_pillow_{mode.lower()}_{fmt}.ico"] = b.getvalue()
    w, h = 11, 6
    pal16 = bytes(int(v) for v in rng.integers(0, 256, 64))
    idx = rng.integers(0, 16, (h, w))
    rgb = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    bgr = b"".join(rgb[y, :, ::-1].tobytes() + bytes((-3 * w) % 4) for y in range(h - 1, -1, -1))
    bgrx = b"".join(np.concatenate([rgb[y, :, ::-1], np.full((w, 1), 200, np.uint8)], 1).tobytes() for y in range(h - 1, -1, -1))
    d4 = ico_dib(w, h, 4, bmp_rows(idx, 4), pal16)
    d24 = ico_dib(w, h, 24, bgr)
    d32 = ico_dib(w, h, 32, bgrx)
    out["ico_bmp_4.ico"] = ico_file([(w, h, 16, 4, d4)])
    out["ico_bmp_1.ico"] = ico_file([(w, h, 2, 1, ico_dib(w, h, 1, bmp_rows(idx % 2, 1), pal16[:8]))])
    out["ico_bmp_8.ico"] = ico_file([(w, h, 0, 8, ico_dib(w, h, 8, bmp_rows(idx, 8), pal16 + bytes(960)))])
    out["ico_bmp_24.ico"] = ico_file([(w, h, 0, 24, d24)])
    out["ico_bmp_32.ico"] = ico_file([(w, h, 0, 32, d32)])
    out["ico_bmp_top_down.ico"] = ico_file([(w, h, 0, 24, ico_dib(w, h, 24, b"".join(
        rgb[y, :, ::-1].tobytes() + bytes((-3 * w) % 4) for y in range(h)), topdown=True))])
    rle8 = bytes([11, 7, 0, 0]) * h + bytes([0, 1])
    out["ico_bmp_rle8.ico"] = ico_file([(w, h, 0, 8, ico_dib(w, h, 8, rle8, pal16 + bytes(960), comp=1))])
    # The choice: the largest area first, then the least colour depth (the 24-bit frame here,
    # not the 32-bit one of the same size nor the smaller 4-bit one).
    out["ico_choice.ico"] = ico_file([(5, 3, 16, 4, ico_dib(5, 3, 4, bmp_rows(idx[:3, :5], 4), pal16)),
                                      (w, h, 0, 32, d32), (w, h, 0, 24, d24)])
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, "PNG")
    out["ico_png_frame.ico"] = ico_file([(w, h, 0, 32, png.getvalue()), (5, 3, 0, 24, d24)])
    # The AND mask at the entry's end: a size that puts it before the file's start (refused),
    # one that puts it inside the XOR rows (read), one whose last row lacks its padding (read),
    # one a byte past that (refused).
    out["ico_mask_before_file.ico"] = ico_file([(w, h, 0, 24, d24, 1)])
    out["ico_mask_in_rows.ico"] = ico_file([(w, h, 0, 24, d24, 40)])
    cut = ico_file([(w, h, 0, 24, d24)])
    out["ico_mask_last_row_short.ico"] = cut[:-2]
    out["ico_mask_cut.ico"] = cut[:-3]
    # 32 bits: the alpha read is every fourth byte of w * h * 4 from the data (refused one short).
    out["ico_alpha_cut.ico"] = ico_file([(w, h, 0, 32, d32[: 40 + 4 * w * h - 1])])
    out["ico_entry_says_32.ico"] = ico_file([(w, h, 0, 32, d4)])  # a 4-bit bitmap read as 32 says
    out["ico_no_entries.ico"] = b"\0\0\1\0\0\0"
    out["ico_directory_cut.ico"] = ico_file([(w, h, 0, 24, d24)])[:20]
    out["ico_height_1.ico"] = ico_file([(w, 1, 0, 24, ico_dib(w, 0, 24, b"", mask=b"")[:8] + struct.pack("<i", 1) +
                                         ico_dib(w, 0, 24, b"", mask=b"")[12:] + bgr[: ((3 * w + 3) // 4) * 4])])
    # What an icon's first entry makes of a TGA reading: Pillow cannot load it either.
    out["ico_tga_reading.ico"] = (struct.pack("<HHH", 0, 1, 3) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 4, 0x00080002, 22)
                                  + bytes(range(100, 118)))
    return out


def gif_bytes(a, colors, **kw):
    b = io.BytesIO()
    Image.fromarray(a).convert("P", palette=Image.ADAPTIVE, colors=colors).save(b, "GIF", **kw)
    return b.getvalue()


def on_screen(d, sw, sh, x, y):
    """The GIF with a larger logical screen and its first frame at (x, y)."""
    d = bytearray(d)
    d[6:10] = struct.pack("<HH", sw, sh)
    i = 13 + (3 * (2 << (d[10] & 7)) if d[10] & 0x80 else 0)
    while d[i] == 0x21:  # extensions: label, then data blocks up to the terminator
        i += 2
        while d[i]:
            i += 1 + d[i]
        i += 1
    assert d[i] == 0x2C
    d[i + 1:i + 5] = struct.pack("<HH", x, y)
    return bytes(d)


def lzw(indices, mcs, lead_clear=True, deferred=False, end_after=None):
    """GIF LZW data for the indices: a clear code first (lead_clear), a clear when the table is
    full or not (deferred: the table frozen, codes staying 12 bits), and an end code after
    end_after codes as well as at the end. Returns the bytes and the bit where the first end
    code ends."""
    clear, end = 1 << mcs, (1 << mcs) + 1

    def reset():
        return {(i,): i for i in range(clear)}, end + 1, mcs + 1

    table, nxt, size = reset()
    codes = []

    def put(c):
        nonlocal size
        while nxt - 1 >= (1 << size) and size < 12:  # the decoder's size for this code
            size += 1
        codes.append((c, size))

    if lead_clear:
        codes.append((clear, size))
    w = ()
    for k in indices:
        if w + (k,) in table:
            w += (k,)
            continue
        put(table[w])
        if end_after is not None and len(codes) == end_after:
            put(end)
        if nxt < 4096:
            table[w + (k,)] = nxt
            nxt += 1
        elif not deferred:
            put(clear)
            table, nxt, size = reset()
        w = (k,)
    put(table[w])
    put(end)
    bits = nb = at = 0
    first_end = None
    out = bytearray()
    for c, n in codes:
        bits |= c << nb
        nb += n
        at += n
        if c == end and first_end is None:
            first_end = at
        while nb >= 8:
            out.append(bits & 255)
            bits >>= 8
            nb -= 8
    if nb:
        out.append(bits & 255)
    return bytes(out), first_end


def sub_blocks(data, size=255):
    return b"".join(bytes([len(data[i:i + size])]) + data[i:i + size] for i in range(0, len(data), size))


def gif_of(w, h, indices, palette, **kw):
    """A one-frame GIF with a global table of the palette's colours and LZW data from lzw(), cut
    into sub-blocks after the byte ending the first end code. Returns the bytes and the offset
    of that cut (where the second run of sub-blocks starts)."""
    bits = max(1, (len(palette) - 1).bit_length())
    head = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80 | (bits - 1), 0, 0)
    head += bytes(v for c in palette for v in c) + bytes(3 * ((2 << (bits - 1)) - len(palette)))
    head += b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + bytes([max(2, bits)])
    data, first_end = lzw(indices, max(2, bits), **kw)
    cut = (first_end + 7) // 8
    first = head + sub_blocks(data[:cut])
    return first + sub_blocks(data[cut:]) + b"\x00;", len(first)


# Where the GIF "pad" lines insert their empty sub-blocks (set by gifs()).
GIF_CUTS = {}


def gifs(rng):
    """GIFs whole and cut: Pillow reads one that ends after its first frame's end code."""
    out = {}
    a = rng.integers(0, 256, (23, 37, 3)).astype(np.uint8)
    a[:11] = a[:11] // 64 * 64
    g = gif_bytes(a, 64)
    out["gif_whole.gif"] = g
    for k in (1, 2, 3, 4):  # the trailer; and the terminator; and the last data byte ...
        out[f"gif_cut{k}.gif"] = g[:-k]
    out["gif_half.gif"] = g[: len(g) // 2]
    out["gif_header_only.gif"] = g[:13]
    t = gif_bytes(a, 16, transparency=3)
    out["gif_transparent.gif"] = t
    out["gif_transparent_cut2.gif"] = t[:-2]
    out["gif_interlaced.gif"] = gif_bytes(a, 16, interlace=1, transparency=0)
    small = gif_bytes(a[:5, :7], 8)
    out["gif_frame_inside.gif"] = on_screen(small, 12, 9, 3, 2)
    out["gif_frame_inside_transparent.gif"] = on_screen(gif_bytes(a[:5, :7], 8, transparency=2), 12, 9, 0, 4)
    # A first frame reaching past the screen: Pillow grows the picture to hold it.
    out["gif_frame_past_right.gif"] = on_screen(small, 9, 5, 4, 0)
    out["gif_frame_past_both_transparent.gif"] = on_screen(gif_bytes(a[:5, :7], 8, transparency=2), 4, 3, 2, 1)
    out["gif_frame_larger_than_screen.gif"] = on_screen(small, 3, 2, 0, 0)
    out["gif_frame_past_interlaced.gif"] = on_screen(gif_bytes(a[:9, :6], 8, interlace=1), 5, 5, 1, 3)
    out["gif_frame_far_away.gif"] = on_screen(small, 7, 5, 30000, 30000)  # 30007x30005: too large
    b = io.BytesIO()
    im = Image.fromarray(a).convert("P", palette=Image.ADAPTIVE, colors=32)
    im.save(b, "GIF", save_all=True, append_images=[Image.fromarray(255 - a).convert("P", palette=Image.ADAPTIVE, colors=32)])
    two = b.getvalue()
    out["gif_two_frames.gif"] = two
    out["gif_two_frames_cut.gif"] = two[: len(two) - 40]  # inside the second frame
    # The last data block one byte longer (a zero after the codes), cut before that byte: the
    # frame's codes are all there, but Pillow never reads a partial block.
    i = len(g) - 2  # the terminator
    j = 13 + 3 * (2 << (g[10] & 7))
    while g[j] == 0x21:
        j += 2
        while g[j]:
            j += 1 + g[j]
        j += 1
    j += 10 + (3 * (2 << (g[j + 9] & 7)) if g[j + 9] & 0x80 else 0) + 1  # descriptor, local table, code size
    last = j
    while j < i:
        last, j = j, j + 1 + g[j]
    if g[last] < 255:
        padded = g[:last] + bytes([g[last] + 1]) + g[last + 1:i] + b"\x00" + g[i:]
        out["gif_padded_block_cut.gif"] = padded[: i + 1 - 1]  # up to the codes, without the pad byte
        # One more block after the frame's codes, the file cut inside it: the whole blocks
        # before it write every pixel, so Pillow reads the file.
        out["gif_cut_in_later_block.gif"] = g[:i] + bytes([9]) + bytes(4)
    # Stray bytes before the first image, which Pillow skips.
    k = 13 + 3 * (2 << (g[10] & 7))
    out["gif_stray_bytes.gif"] = g[:k] + b"\x00\x07\xff" + g[k:]
    # No colour table: Pillow reads the indices as grey levels.
    bare = bytearray(small[:13] + small[13 + 3 * (2 << (small[10] & 7)):])
    bare[10] &= 0x7F
    out["gif_no_palette.gif"] = bytes(bare)
    out["gif_no_palette_past_screen.gif"] = on_screen(bytes(bare), 4, 4, 2, 3)
    # A 2x2 frame whose codes end after one pixel (clear, 0, end), with and without a terminator.
    early = b"GIF89a" + struct.pack("<HH", 2, 2) + bytes([0x80, 0, 0]) + bytes([0, 0, 0, 255, 255, 255])
    early += b"," + struct.pack("<HHHH", 0, 0, 2, 2) + bytes([0, 2, 2, 0x44, 0x01])
    out["gif_early_end.gif"] = early
    out["gif_early_end_terminated.gif"] = early + b"\x00;"
    # LZW streams other encoders write: no clear code first; a full table kept ("deferred
    # clear": more than 4096 codes after it fills, which stb_image refused).
    noise = rng.integers(0, 256, 140 * 140)
    palette = [tuple(int(v) for v in c) for c in rng.integers(0, 256, (256, 3))]
    out["gif_no_leading_clear.gif"] = gif_of(31, 17, noise[:31 * 17], palette, lead_clear=False)[0]
    out["gif_deferred_clear.gif"] = gif_of(140, 140, noise, palette, deferred=True)[0]
    # An end code after 40 codes, and the rest of the codes after it. Pillow's decoder stops at
    # the end code; ImageFile.load calls it again, with the codes after it, only when a further
    # 64 KiB read finds more of the file: refused here, read when the "pad" line inserts 70,000
    # empty sub-blocks after it (tests pad_gif_end_code_read_on).
    mid, cut = gif_of(31, 17, noise[:31 * 17], palette, end_after=40)
    out["gif_end_code_inside.gif"] = mid
    GIF_CUTS["gif_end_code_inside.gif"] = cut
    # Extensions as Pillow reads them: a NETSCAPE2.0 block without its looping sub-block makes it
    # take the image descriptor for sub-blocks (refused: no image); an empty comment is skipped.
    k = 13 + 3 * (2 << (g[10] & 7))
    out["gif_netscape_short.gif"] = g[:k] + b"\x21\xff\x0bNETSCAPE2.0\x00" + g[k:]
    out["gif_empty_comment.gif"] = g[:k] + b"\x21\xfe\x00" + g[k:]
    out["gif_gce_short.gif"] = g[:k] + b"\x21\xf9\x02\x01\x00\x00" + g[k:]
    return out


# (NAME, SRC, OFFSET, KIND, K): Pillow's plain decoders read 1 MiB blocks from the data start.
BLOCK = 1 << 20


def pads():
    d2 = len(b"P2\n4 1\n255\n")  # the data start of pad_p2 and pad_quirk
    d1 = len(b"P1\n4 1\n")
    return [
        # Empty GIF sub-blocks after the one holding an end code (see gifs()).
        ("pad_gif_end_code_read_on", "gif_end_code_inside.gif", GIF_CUTS["gif_end_code_inside.gif"], "zeros", 70000),
        ("pad_gif_end_code_small", "gif_end_code_inside.gif", GIF_CUTS["gif_end_code_inside.gif"], "zeros", 1000),
        # "34" cut by the block boundary: the half token is stitched to the next block.
        ("pad_p2_token_cut", "pad_p2.pgm", d2 + 3, "space", BLOCK - 4),
        # The boundary just before "34", just after it.
        ("pad_p2_token_before", "pad_p2.pgm", d2 + 3, "space", BLOCK - 3),
        ("pad_p2_token_after", "pad_p2.pgm", d2 + 3, "space", BLOCK - 5),
        # A comment open at the block's end, closed in the next one.
        ("pad_p2_comment_cut", "pad_p2.pgm", d2 + 3, "comment", BLOCK),
        # A comment glued to a token: "12" then a comment crossing the boundary, then " 34".
        ("pad_p2_comment_glued", "pad_p2.pgm", d2 + 2, "comment", BLOCK + 10),
        # Bitmap: the bytes after the block that completes the image are not looked at.
        ("pad_p1_cut", "pad_p1.pbm", d1 + 3, "space", BLOCK - 4),
        # The LF closing a comment opens the next block, and a CR follows: Pillow's
        # _find_comment_end takes the CR, which swallows "34 56".
        ("pad_quirk_lf_first", "pad_quirk.pgm", d2 + 4, "comment_open", BLOCK - 4),
    ]


def padded(data, offset, kind, k):
    if kind == "space":
        ins = b" " * k
    elif kind == "zeros":
        ins = bytes(k)
    elif kind == "comment":
        ins = b"#" + b"c" * (k - 2) + b"\n"
    else:  # comment_open: K bytes of comment text with no end (the source's own LF follows)
        ins = b"c" * k
    return data[:offset] + ins + data[offset:]


def outcome(data):
    # From a file, as lcam reads: Image.open(path) maps some raw images (BMP rows) where
    # Image.open(BytesIO) would decode them.
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        try:
            a = np.asarray(Image.open(f.name).convert("RGB"))
        except Exception:  # Pillow's refusal, whatever its type
            return "ERR"
    return f"OK {a.shape[1]} {a.shape[0]} {sum64(a)}"


# Where lcam on a CPU other than x86-64 gives what that CPU's Pillow gives, when it differs from
# index.txt: files decoded by a library's own floating point (see the module's docstring).
FOLLOWED_ON_OTHER_CPUS = ("j2k_",)


def platform_index(out):
    """Writes index.MACHINE.txt: the lines whose outcome this Pillow gives differently."""
    import platform
    machine = platform.machine()
    lines = []
    with open(os.path.join(out, "index.txt")) as f:
        for ln in f:
            t = ln.split()
            if not t or t[0].startswith("#"):
                continue
            if t[0] == "file":
                with open(os.path.join(out, t[1]), "rb") as g:
                    data = g.read()
                head, want = t[:2], [w for w in t[2:] if w != "lcam-refuses"]
            else:
                with open(os.path.join(out, t[2]), "rb") as g:
                    data = padded(g.read(), int(t[3]), t[4], int(t[5]))
                head, want = t[:6], t[6:]
            got = outcome(data)
            if got != " ".join(want):
                who = "lcam" if t[1].startswith(FOLLOWED_ON_OTHER_CPUS) else "x86-64"
                lines.append(" ".join(head) + f" {got} {who}")
    path = os.path.join(out, f"index.{machine}.txt")
    with open(path, "w") as f:
        f.write(f"# Pillow {PIL.__version__} on {machine}: the lines of index.txt whose outcome differs there,\n")
        f.write("# written by tools/make_format_fixture.py --platform-index; the last word says whom lcam follows\n")
        f.write("# on that CPU: lcam (the same outcome) or x86-64 (index.txt's, on every CPU)\n")
        f.write("\n".join(lines) + ("\n" if lines else ""))
    print(f"wrote {len(lines)} lines to {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures", "image", "formats"))
    ap.add_argument("--compare", action="store_true", help="print disagreements with the index, write nothing")
    ap.add_argument("--platform-index", action="store_true",
                    help="write index.MACHINE.txt: where this CPU's Pillow differs from index.txt")
    args = ap.parse_args()
    if args.platform_index:
        return platform_index(args.out)
    fs = files()
    lines = [f"file {name} {outcome(data)}" + (" lcam-refuses" if name in LCAM_REFUSES else "")
             for name, data in sorted(fs.items())]
    for name, src, off, kind, k in pads():
        lines.append(f"pad {name} {src} {off} {kind} {k} {outcome(padded(fs[src], off, kind, k))}")
    index = os.path.join(args.out, "index.txt")
    if args.compare:
        with open(index) as f:
            old = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
        diff = [(a, b) for a, b in zip(old, lines) if a != b]
        for a, b in diff:
            print(f"index: {a}\nhere:  {b}")
        print(f"Pillow {PIL.__version__}: {len(lines) - len(diff)} of {len(lines)} agree")
        return
    os.makedirs(args.out, exist_ok=True)
    for name, data in fs.items():
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data)
    with open(index, "w") as f:
        f.write(f"# Pillow {PIL.__version__}: Image.open(f).convert('RGB') of each file, written by tools/make_format_fixture.py\n")
        f.write("# file NAME OK W H SUM64 | file NAME ERR\n")
        f.write("# pad NAME SRC OFFSET KIND K (OK W H SUM64 | ERR): SRC with K bytes inserted at OFFSET\n")
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(fs)} files and {len(lines)} lines to {args.out}")


if __name__ == "__main__":
    main()
