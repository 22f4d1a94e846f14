"""``LRU``: a bounded, thread-safe memo with least-recently-used eviction."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable


class LRU:
    """A mapping that keeps at most ``max_items`` entries and ``max_bytes`` bytes (as told by
    ``put``), dropping the least recently used ones first, never all at once.

    Safe to use from several threads: every operation holds a lock; values are expected to be
    results of pure computations, so two threads putting the same key store equal values.
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
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return default
            self._data.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, nbytes: int = 0) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._data[key] = (value, nbytes)
            self._bytes += nbytes
            while len(self._data) > self.max_items or (
                    self.max_bytes is not None and self._bytes > self.max_bytes and len(self._data) > 1):
                _, (_, size) = self._data.popitem(last=False)
                self._bytes -= size

    def items(self) -> list[tuple[Hashable, Any]]:
        """A snapshot of the entries, least recently used first."""
        with self._lock:
            return [(k, v) for k, (v, _) in self._data.items()]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0
