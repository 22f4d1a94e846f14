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
    store equal values. Entries are tuples, which the garbage collector stops tracking when
    they hold no containers, so big caches of masks add little to its work.
    """

    def __init__(self, max_items: int, max_bytes: int | None = None) -> None:
        if max_items < 1:
            raise ValueError("an LRU needs room for one entry at least")
        self.max_items, self.max_bytes = max_items, max_bytes
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable, default: Any = None) -> Any:
        entry = self._data.get(key)
        if entry is None:
            return default
        try:
            self._data.move_to_end(key)
        except KeyError:   # evicted by another thread meanwhile
            pass
        return entry[0]

    def put(self, key: Hashable, value: Any, nbytes: int = 0) -> None:
        with self._lock:
            self._add(key, value, nbytes)
            self._evict()

    def load(self, entries) -> None:
        """Put many ``(key, value, nbytes)`` entries, least recently used first (as ``items()``
        lists them), under one lock: restoring a cache file puts tens of thousands."""
        with self._lock:
            for key, value, nbytes in entries:
                self._add(key, value, nbytes)
            self._evict()

    def _add(self, key: Hashable, value: Any, nbytes: int) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self._bytes -= old[1]
        self._data[key] = (value, nbytes)
        self._bytes += nbytes

    def _evict(self) -> None:
        while len(self._data) > self.max_items or (
                self.max_bytes is not None and self._bytes > self.max_bytes and len(self._data) > 1):
            _, (_, size) = self._data.popitem(last=False)
            self._bytes -= size

    def items(self) -> list[tuple[Hashable, Any]]:
        """A snapshot of the entries, least recently used first."""
        with self._lock:
            entries = list(self._data.items())   # one C-level copy: gets cannot interleave
        return [(k, v) for k, (v, _) in entries]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0
