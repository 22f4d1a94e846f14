"""``LRU``: a bounded, thread-safe memo with least-recently-used eviction."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable


class LRU:
    """A mapping that keeps at most ``max_items`` entries and ``max_bytes`` bytes (as told by
    ``put``), dropping the least recently used ones first, a few at a time, never all at once.

    Safe to use from several threads: ``get`` is a lookup and a move to the back (each one
    atomic: an entry evicted in between is simply not moved); ``put`` holds a lock. Values
    are expected to be results of pure computations, so two threads putting the same key
    store equal values. Values that are tuples of numbers and arrays add little to the
    garbage collector's work: it stops tracking tuples that hold no containers.
    """

    def __init__(self, max_items: int, max_bytes: int | None = None) -> None:
        if max_items < 1:
            raise ValueError("an LRU needs room for one entry at least")
        self.max_items, self.max_bytes = max_items, max_bytes
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}   # the entries given a size, when bytes are bounded
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes

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
            if len(self._data) > self.max_items or (self.max_bytes is not None and self._bytes > self.max_bytes):
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
                if self.max_bytes is not None:
                    self._sizes.update((key, nbytes) for key, nbytes in zip(keys, sizes) if nbytes)
                    self._bytes = sum(self._sizes.values())
            self._evict()

    def _add(self, key: Hashable, value: Any, nbytes: int) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if self.max_bytes is not None:
            self._bytes += nbytes - self._sizes.pop(key, 0)
            if nbytes:
                self._sizes[key] = nbytes

    def _evict(self) -> None:
        while len(self._data) > self.max_items or (
                self.max_bytes is not None and self._bytes > self.max_bytes and len(self._data) > 1):
            key, _ = self._data.popitem(last=False)
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
