"""The cache file format: a JSON header and raw numeric arrays, read back memory-mapped.

    b"GCDSTORE" | u64 header length | header (UTF-8 JSON) | padding | array data

The header holds the caller's metadata, each array's dtype, shape and offset, the data's
length and its BLAKE2b digest. Reading checks all of that (a truncated or altered file is a
``StoreError``) and maps the data read-only, so processes loading the same file share its
pages. Nothing in a file is ever executed: there is no pickle, and only plain numeric dtypes
are accepted.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from gcd.errors import StoreError

MAGIC = b"GCDSTORE"
ALIGN = 64


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def encode(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """The file's bytes for ``meta`` (JSON-serialisable) and ``arrays``."""
    layout, chunks, offset = {}, [], 0
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        if array.dtype.kind not in "biuf" or array.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype {array.dtype}; only numeric arrays are stored")
        start = _aligned(offset)
        chunks.append(b"\0" * (start - offset))
        chunks.append(array.tobytes())
        layout[name] = [array.dtype.str, list(array.shape), start]
        offset = start + array.nbytes
    data = b"".join(chunks)
    header = json.dumps({"meta": meta, "arrays": layout, "data_bytes": len(data),
                         "blake2b": hashlib.blake2b(data, digest_size=32).hexdigest()},
                        separators=(",", ":")).encode()
    head = MAGIC + struct.pack("<Q", len(header)) + header
    return head + b"\0" * (_aligned(len(head)) - len(head)) + data


def write(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> int:
    """Write atomically (a reader never sees half a file); returns the file's size."""
    data = encode(meta, arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a file written by ``write``; the arrays are read-only memory maps.
    The checksum is computed from ordinary reads of the file, so the mapped pages become part
    of this process's memory only as the arrays are used."""
    try:
        if path.stat().st_size < len(MAGIC) + 8:
            raise StoreError("not a gcd cache file (too short)")
        buffer = np.memmap(path, dtype=np.uint8, mode="r")
        header, start = _header(buffer)
        digest = hashlib.blake2b(digest_size=32)
        with open(path, "rb") as f:
            f.seek(start)
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        # plain ndarray views of the map: numpy's memmap subclass makes every operation on a
        # derived array pay for a may_share_memory check against the whole map
        return _arrays(header, buffer[start:].view(np.ndarray), digest.hexdigest())
    except OSError as e:
        raise StoreError(f"unreadable: {e}") from None


def decode(data) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) from a file's bytes (``bytes`` or a uint8 array; arrays are read-only views)."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    header, start = _header(buffer)
    body = buffer[start:]
    return _arrays(header, body, hashlib.blake2b(body, digest_size=32).hexdigest())


def _header(buffer: np.ndarray) -> tuple[dict, int]:
    """(the header, where the data starts), the file's size checked against it."""
    try:
        if buffer[:len(MAGIC)].tobytes() != MAGIC:
            raise StoreError("not a gcd cache file")
        (n,) = struct.unpack("<Q", buffer[len(MAGIC):len(MAGIC) + 8].tobytes())
        if len(MAGIC) + 8 + n > len(buffer):
            raise StoreError("truncated header")
        header = json.loads(buffer[len(MAGIC) + 8:len(MAGIC) + 8 + n].tobytes())
        start = _aligned(len(MAGIC) + 8 + n)
        expected = start + int(header["data_bytes"])
        if expected != len(buffer):
            raise StoreError(f"size {len(buffer)} bytes, expected {expected}: truncated or altered")
        return header, start
    except StoreError:
        raise
    except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as e:
        raise StoreError(f"unreadable: {type(e).__name__}: {e}") from None


def _arrays(header: dict, body: np.ndarray, digest: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) as read-only views of ``body``, whose digest must be the header's."""
    try:
        if digest != header["blake2b"]:
            raise StoreError("checksum mismatch: the file was altered")
        length = int(header["data_bytes"])
        arrays = {}
        for name, (dtype, shape, offset) in header["arrays"].items():
            dt = np.dtype(dtype)
            if dt.kind not in "biuf" or dt.hasobject:
                raise StoreError(f"array {name!r} has a non-numeric dtype {dtype!r}")
            count = int(np.prod(shape, dtype=np.int64))
            if offset < 0 or offset + count * dt.itemsize > length:
                raise StoreError(f"array {name!r} lies outside the data")
            array = body[offset:offset + count * dt.itemsize].view(dt).reshape(shape)
            array.flags.writeable = False
            arrays[name] = array
        return header["meta"], arrays
    except StoreError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise StoreError(f"unreadable: {type(e).__name__}: {e}") from None
