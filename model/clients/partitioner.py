"""Kafka's default partitioner for keyed records: ``toPositive(murmur2(key)) % partitions``.

This must match Kafka bit for bit (``org.apache.kafka.common.utils.Utils.murmur2``), or
per-key ordering verdicts would be about a different key-to-partition mapping than the
user's real producers use.  Records without a key use the sticky partitioner (KIP-480,
KIP-794) in Kafka; the model's workload always sends keyed records or names a partition.
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data``, returned as a signed int32 like Java's."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - (length % 4)
    for i in range(0, whole, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> _R
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not ``abs``)."""
    return n & 0x7FFFFFFF


def partition_for_key(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a UTF-8 string key."""
    return to_positive(murmur2(key.encode("utf-8"))) % partitions


def spread_keys(count: int, partitions: int) -> list[str]:
    """``count`` record keys named ``k<n>``, the lowest names for which Kafka's
    partitioner gives every partition its fair share (``count / partitions``, the first
    ones one more).  The names ``k0, k1, k2`` all hash to partition 1 of two, so a
    workload of consecutive names would never write to partition 0 and nothing could
    span partitions (a torn transaction, a consumer reading two leaders)."""
    quota = [count // partitions + (1 if p < count % partitions else 0)
             for p in range(partitions)]
    keys: list[str] = []
    n = 0
    while len(keys) < count:
        name = f"k{n}"
        partition = partition_for_key(name, partitions)
        if quota[partition]:
            quota[partition] -= 1
            keys.append(name)
        n += 1
    return keys
