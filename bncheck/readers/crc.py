"""CRC-32C as TensorFlow and LevelDB use it, including their 'masked' form."""

from __future__ import annotations

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes, initial: int = 0) -> int:
    """Plain CRC-32C of ``data``, continuing from ``initial``."""
    return google_crc32c.extend(initial, data)


def mask(crc: int) -> int:
    """TensorFlow's masked CRC (rotate right by 15, add a constant), stored in files."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF
