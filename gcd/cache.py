"""``LRU``: a bounded, thread-safe memo with least-recently-used eviction; ``ArrayPool``:
equal arrays held once."""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np


class LRU:
    """A mapping that keeps at most ``max_items`` entries and ``max_bytes`` bytes (as told by
    ``put``), dropping the least recently used ones first, a few at a time, never all at once.

    Safe to use from several threads: ``get`` is a lookup and a move to the back (each one
    atomic: an entry evicted in between is simply not moved); ``put`` holds a lock. Values
    are expected to be results of pure computations, so two threads putting the same key
    store equal values. Values that are tuples of numbers and arrays add little to the
    garbage collector's work: it stops tracking tuples that hold no containers.

    ``held``: bytes its values hold outside the sizes given to ``put`` (arrays of an
    ``ArrayPool`` that entries share), counted against ``max_bytes`` too. ``entry_bytes``:
    what every entry costs, whatever ``put`` is told (no size is kept per entry).
    """

    def __init__(self, max_items: int, max_bytes: int | None = None, held: Callable[[], int] | None = None,
                 entry_bytes: int | None = None) -> None:
        if max_items < 1:
            raise ValueError("an LRU needs room for one entry at least")
        self.max_items, self.max_bytes, self._held, self.entry_bytes = max_items, max_bytes, held, entry_bytes
        self._sized = max_bytes is not None and entry_bytes is None   # a size kept per entry
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}   # the entries given a size, when bytes are bounded
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes if self.entry_bytes is None else len(self._data) * self.entry_bytes

    def get(self, key: Hashable, default: Any = None) -> Any:
        data = self._data
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return default
        try:
            data.move_to_end(key)
        except KeyError:   # evicted by another thread meanwhile
            pass
        return value

    def put(self, key: Hashable, value: Any, nbytes: int = 0) -> None:
        with self._lock:
            self._add(key, value, nbytes)
            if len(self._data) > self.max_items or self._over_bytes():
                self._evict()

    def load(self, keys: list, values: list, sizes: list[int]) -> None:
        """Put many entries, least recently used first (as ``items()`` lists them), under one
        lock: restoring a cache file puts tens of thousands."""
        with self._lock:
            if self._data:
                for key, value, nbytes in zip(keys, values, sizes):
                    self._add(key, value, nbytes)
            else:   # into an empty cache (a restore): in bulk
                self._data.update(zip(keys, values))
                if self._sized:
                    self._sizes.update((key, nbytes) for key, nbytes in zip(keys, sizes) if nbytes)
                    self._bytes = sum(self._sizes.values())
            self._evict()

    def _add(self, key: Hashable, value: Any, nbytes: int) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if self._sized:
            self._bytes += nbytes - self._sizes.pop(key, 0)
            if nbytes:
                self._sizes[key] = nbytes

    def _over_bytes(self) -> bool:
        return self.max_bytes is not None and self.nbytes + (self._held() if self._held else 0) > self.max_bytes

    def _evict(self) -> None:
        while len(self._data) > self.max_items or (len(self._data) > 1 and self._over_bytes()):
            key, value = self._data.popitem(last=False)
            del value   # what only it held is freed now, before ``held`` is asked again
            self._bytes -= self._sizes.pop(key, 0)

    def items(self) -> list[tuple[Hashable, Any]]:
        """A snapshot of the entries, least recently used first."""
        with self._lock:
            return list(self._data.items())   # one C-level copy: gets cannot interleave

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._sizes.clear()
            self._bytes = 0


_MISSING = object()


class ArrayPool:
    """Equal read-only arrays held once: ``share`` returns an equal array that something still
    holds, or keeps the one given. ``nbytes`` is the size of the distinct arrays alive (each
    is forgotten when the last holder drops it). Safe to use from several threads."""

    def __init__(self) -> None:
        self.nbytes = 0
        self._arrays: dict[int, list[weakref.ref]] = {}   # hash of the bytes -> arrays alive
        self._lock = threading.RLock()   # re-entered by a release that happens while it is held

    def share(self, array: np.ndarray) -> np.ndarray:
        key = _digest(array)
        with self._lock:
            for ref in list(self._arrays.get(key, ())):
                kept = ref()
                if kept is not None and kept.dtype == array.dtype and np.array_equal(kept, array):
                    return kept
            self._arrays.setdefault(key, []).append(weakref.ref(array, self._forget(key, array.nbytes)))
            self.nbytes += array.nbytes
        return array

    def _forget(self, key: int, nbytes: int) -> Callable[[weakref.ref], None]:
        def forget(ref: weakref.ref) -> None:
            with self._lock:
                refs = self._arrays.get(key, [])
                if ref in refs:
                    refs.remove(ref)
                    self.nbytes -= nbytes
                    if not refs:
                        del self._arrays[key]
        return forget


def _digest(array: np.ndarray) -> int:
    """A hash of an array's contents; for integers its size, XOR and sum (a few times faster
    than hashing its bytes; equal arrays still share it, and ``share`` compares the rest)."""
    flat = array.reshape(-1)
    if flat.dtype.kind in "iu":
        return hash((flat.dtype.str, flat.size, int(np.bitwise_xor.reduce(flat)), int(flat.sum(dtype=np.uint64))))
    return hash(array.tobytes())

