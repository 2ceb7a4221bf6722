"""fixture_sum.py — the checksum the image fixtures record ("sum64"), shared by
tools/make_image_fixture.py and tools/make_format_fixture.py; tests/test_image.cpp computes the same:
sum over i of (byte_i + 1) * (splitmix64(i) | 1) mod 2^64, over an array's bytes in order.
"""
import numpy as np  # wrapping uint64 arithmetic

U64 = np.uint64


def sum64(a):
    """Order-sensitive checksum of a uint8 array's bytes."""
    b = np.ascontiguousarray(a, dtype=np.uint8).reshape(-1).astype(U64)
    with np.errstate(over="ignore"):
        z = np.arange(b.size, dtype=U64) + U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
        z = z ^ (z >> U64(31))
        return int(np.sum((b + U64(1)) * (z | U64(1)), dtype=U64))
