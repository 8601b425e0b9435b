"""Screenshots: valid 1-bit grayscale PNGs of any size, fast enough for a million files."""

from __future__ import annotations

import functools
import struct
import zlib
from typing import Final

from benchmarks.corpus.spec import seeded_rng

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_ADLER_BASE: Final = 65521


@functools.lru_cache(maxsize=64)
def _adler32_rows(row: bytes, count: int) -> int:
    return zlib.adler32(row * count)


def _adler32_append_row(adler: int, row: bytes, count: int) -> int:
    """Adler-32 of (data whose checksum is ``adler``) + ``row * count``, like adler32_combine()."""
    length = len(row) * count
    other = _adler32_rows(row, count)
    rem = length % _ADLER_BASE
    s1 = adler & 0xFFFF
    s2 = rem * s1 % _ADLER_BASE
    s1 += (other & 0xFFFF) + _ADLER_BASE - 1
    s2 += (adler >> 16) + (other >> 16) + _ADLER_BASE - rem
    return (s2 % _ADLER_BASE) << 16 | s1 % _ADLER_BASE


class PngFactory:
    """Valid 1-bit grayscale PNGs (a blank page) padded with a ``tEXt`` chunk of filler."""

    _KEYWORD: Final = b"Comment\x00"

    def __init__(self, seed: int, image_bytes: int) -> None:
        rng = seeded_rng(seed, "png-filler")
        length = max(1024, int(image_bytes * 1.2) + 1024)
        printable = bytes(0x20 + i % 95 for i in range(256))
        self._filler = memoryview(rng.randbytes(2 * length).translate(printable))
        self._max_len = length
        self._idat: dict[tuple[int, int], bytes] = {}
        self._segments: dict[int, list[bytes]] = {}
        self._iend = _chunk(b"IEND", b"")

    def _idat_chunk(self, width: int, height: int) -> bytes:
        """IDAT of a white ``width`` x ``height`` image (cached).

        Compressing a whole image for every distinct size would dominate the run time, so the
        zlib stream is assembled from per-width deflate segments of 1, 2, 4, ... 2048 rows, each
        ended by a full flush (which resets the compressor: segments are independent and
        byte-aligned), plus a final empty block and the Adler-32 of the raw rows.
        """
        key = (width, height)
        chunk = self._idat.get(key)
        if chunk is None:
            row = b"\x00" + b"\xff" * ((width + 7) // 8)
            segments = self._segments.get(width)
            if segments is None:
                co = zlib.compressobj(9, zlib.DEFLATED, -15)
                segments = [co.compress(row * (1 << i)) + co.flush(zlib.Z_FULL_FLUSH) for i in range(12)]
                self._segments[width] = segments
            parts = [b"\x78\xda"]  # zlib header: deflate, 32 KiB window, level 9
            adler, rows = 1, height
            for i in range(11, -1, -1):
                while rows >= 1 << i:
                    parts.append(segments[i])
                    adler = _adler32_append_row(adler, row, 1 << i)
                    rows -= 1 << i
            parts.append(b"\x03\x00")  # final, empty fixed-Huffman block
            parts.append(struct.pack(">I", adler))
            chunk = self._idat[key] = _chunk(b"IDAT", b"".join(parts))
        return chunk

    def render(self, ident: str, width: int, height: int, size: int) -> list[bytes | memoryview]:
        ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        idat = self._idat_chunk(width, height)
        head = self._KEYWORD + ident.encode() + b"\n"
        fixed = len(_PNG_SIGNATURE) + len(ihdr) + 12 + len(head) + len(idat) + len(self._iend)
        n = min(self._max_len, max(0, size - fixed))
        start = zlib.crc32(head) % (len(self._filler) - n + 1)  # varies per image, no shared state
        filler = self._filler[start : start + n]
        crc = zlib.crc32(filler, zlib.crc32(head, zlib.crc32(b"tEXt")))
        text_len = struct.pack(">I", len(head) + n)
        crc_bytes = struct.pack(">I", crc)
        return [_PNG_SIGNATURE, ihdr, text_len, b"tEXt", head, filler, crc_bytes, idat, self._iend]
