"""Kafka's default partitioner for keyed records, bit for bit."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.clients.partitioner import murmur2, partition_for_key, spread_keys, to_positive

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# Every vector of Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/
# common/utils/UtilsTest.java); the last one is given there as a byte array.
KAFKA_MURMUR2_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (bytes([ord("a"), ord("b"), ord("c")]), 479470107),
]


@pytest.mark.parametrize("data, expected", KAFKA_MURMUR2_VECTORS)
def test_murmur2_matches_kafka_vectors(data, expected):
    assert murmur2(data) == expected


def _java_murmur2(data: bytes) -> int:
    """An independent transliteration of Kafka's Java code with int32 wrapping, used to
    cover the tail lengths (0 and 1) that Kafka's vectors leave out."""

    def i32(x: int) -> int:
        x &= 0xFFFFFFFF
        return x - (1 << 32) if x >= 1 << 31 else x

    def ushr(x: int, n: int) -> int:  # Java's >>> on an int
        return (x & 0xFFFFFFFF) >> n

    m, r = 0x5BD1E995, 24
    length = len(data)
    h = i32(0x9747B28C ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = i32(data[i4] | data[i4 + 1] << 8 | data[i4 + 2] << 16 | data[i4 + 3] << 24)
        k = i32(k * m)
        k = i32(k ^ ushr(k, r))
        k = i32(k * m)
        h = i32(h * m)
        h = i32(h ^ k)
    rest = length % 4
    base = length & ~3
    if rest == 3:
        h = i32(h ^ (data[base + 2] << 16))
    if rest >= 2:
        h = i32(h ^ (data[base + 1] << 8))
    if rest >= 1:
        h = i32(h ^ data[base])
        h = i32(h * m)
    h = i32(h ^ ushr(h, 13))
    h = i32(h * m)
    h = i32(h ^ ushr(h, 15))
    return h


def test_reference_transliteration_agrees_with_kafka_vectors():
    for data, expected in KAFKA_MURMUR2_VECTORS:
        assert _java_murmur2(data) == expected


@pytest.mark.parametrize("length", range(0, 9))
def test_murmur2_every_tail_length_matches_java(length):
    data = bytes(range(200, 200 + length))  # high bytes: Java bytes are signed
    assert murmur2(data) == _java_murmur2(data)


@given(st.binary(max_size=64))
def test_murmur2_fits_signed_int32_and_matches_java(data):
    h = murmur2(data)
    assert isinstance(h, int)
    assert INT32_MIN <= h <= INT32_MAX
    assert h == _java_murmur2(data)


def test_to_positive_clears_only_the_sign_bit():
    assert to_positive(0) == 0
    assert to_positive(5) == 5
    assert to_positive(INT32_MAX) == INT32_MAX
    # Differs from abs(): -1 is all ones, so clearing the sign bit leaves 0x7fffffff.
    assert to_positive(-1) == 0x7FFFFFFF != abs(-1)
    assert to_positive(-973932308) == -973932308 & 0x7FFFFFFF != abs(-973932308)
    # abs(Integer.MIN_VALUE) overflows in Java; toPositive gives 0.
    assert to_positive(INT32_MIN) == 0


@given(st.integers(INT32_MIN, INT32_MAX))
def test_to_positive_is_non_negative_and_keeps_low_31_bits(n):
    p = to_positive(n)
    assert 0 <= p <= INT32_MAX
    assert p == n + (1 << 31) if n < 0 else p == n


def test_partition_for_key_uses_murmur2_of_utf8_bytes():
    # "21" hashes to -973932308 in Kafka: toPositive gives 1173551340.
    assert partition_for_key("21", 7) == 1173551340 % 7
    assert partition_for_key("foobar", 16) == (-790332482 & 0x7FFFFFFF) % 16
    assert partition_for_key("é", 1000) == to_positive(murmur2("é".encode("utf-8"))) % 1000
    assert partition_for_key("é", 1000) != to_positive(murmur2("é".encode("latin-1"))) % 1000


def test_partition_for_key_spreads_keys():
    assert len({partition_for_key(f"k{i}", 4) for i in range(32)}) == 4


@given(st.text(max_size=20), st.integers(1, 64))
def test_partition_for_key_in_range_and_stable(key, partitions):
    p = partition_for_key(key, partitions)
    assert 0 <= p < partitions
    assert partition_for_key(key, partitions) == p
    assert p == to_positive(murmur2(key.encode("utf-8"))) % partitions


def test_the_workload_keys_give_every_partition_its_share():
    """Consecutive names do not: k0, k1 and k2 all hash to partition 1 of 2, so the
    default workload would never write partition 0."""
    assert {partition_for_key(k, 2) for k in ("k0", "k1", "k2")} == {1}
    for count, partitions in ((3, 2), (3, 1), (4, 3), (6, 2), (16, 5)):
        keys = spread_keys(count, partitions)
        assert len(set(keys)) == count
        shares = [sum(partition_for_key(k, partitions) == p for k in keys)
                  for p in range(partitions)]
        assert max(shares) - min(shares) <= 1, (count, partitions, shares)
    assert spread_keys(3, 2) == ["k0", "k3", "k4"]
    assert spread_keys(3, 1) == ["k0", "k1", "k2"]
