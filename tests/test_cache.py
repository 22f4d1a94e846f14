"""The bounded memo and the pool of shared arrays (gcd.cache)."""
from __future__ import annotations

import numpy as np

from gcd.cache import LRU, ArrayPool


def test_an_array_pool_holds_equal_arrays_once_and_forgets_released_ones():
    pool = ArrayPool()
    a = pool.share(np.arange(8, dtype=np.uint32))
    b = pool.share(np.arange(8, dtype=np.uint32))
    c = pool.share(np.arange(1, 9, dtype=np.uint32))
    assert b is a and c is not a and pool.nbytes == 64
    del a, b
    assert pool.nbytes == 32
    d = pool.share(np.arange(8, dtype=np.uint32))
    assert d is not c and pool.nbytes == 64


def test_an_lru_counts_the_pooled_arrays_its_entries_hold_once():
    pool = ArrayPool()
    lru = LRU(1000, max_bytes=200, held=lambda: pool.nbytes)
    for i in range(20):   # entries of 10 bytes, each holding its own array of 32
        lru.put(i, pool.share(np.full(8, i, np.uint32)), 10)
        assert lru.nbytes + pool.nbytes <= 200
    assert [k for k, _ in lru.items()] == [16, 17, 18, 19]   # 4 x 42 bytes; a fifth would pass 200
    for i in range(20, 30):   # equal arrays, held once
        lru.put(i, pool.share(np.full(8, 7, np.uint32)), 10)
        assert lru.nbytes + pool.nbytes <= 200
    assert [k for k, _ in lru.items()][-10:] == list(range(20, 30)) and pool.nbytes <= 64
