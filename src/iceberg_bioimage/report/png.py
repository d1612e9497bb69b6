"""A minimal PNG encoder (zlib + struct): 8-bit grayscale, RGB or RGBA, no filters.

The base dependencies carry no imaging library; PNG is simple enough to write
directly. Rows use filter type 0 (none); zlib does the compression.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels → PNG colour type (gray, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray, *, level: int = 6) -> bytes:
    """Encode a ``uint8`` array of shape ``(h, w)`` or ``(h, w, 1|3|4)`` as PNG bytes."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, not {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in _COLOR_TYPES or 0 in array.shape[:2]:
        raise ValueError(f"PNG pixels must be (h, w) or (h, w, 1|3|4), not {array.shape}")
    height, width, channels = array.shape
    rows = np.zeros((height, 1 + width * channels), dtype=np.uint8)
    rows[:, 1:] = array.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)),
            _chunk(b"IEND", b""),
        )
    )
