"""ISA-L inflating a zlib stream in place: the very bytes zlib gives, wherever they are asked
for; damage, a wrong checksum or extra bytes are told, never a crash."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from clearbg.engine import inflate
from clearbg.engine.inflate import Inflater


def _raw(size: int = 300_000) -> bytes:
    rng = np.random.default_rng(size)
    return rng.integers(0, 40, size, dtype=np.uint8).tobytes()  # compressible, not trivially


def _source(pieces: list[bytes]) -> Inflater:
    source = inflate.inflater(pieces)
    assert source is not None, "python-isal's extension exports ISA-L's inflate API"
    return source


def _cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in pieces of ``sizes`` (the rest in one last piece), as IDAT chunks come."""
    pieces, at = [], 0
    for n in sizes:
        pieces.append(data[at : at + n])
        at += n
    return [*pieces, data[at:]]


@pytest.mark.parametrize(
    "sizes",
    [[], [1], [1, 1, 1], [7, 65536], [len(zlib.compress(_raw())) - 2]],
    ids=["one piece", "header split", "one byte pieces", "7 bytes then 64 KB", "checksum split"],
)
@pytest.mark.parametrize("piece", [1, inflate._PIECE], ids=["as given", "coalesced"])
def test_the_stream_lands_where_asked(
    sizes: list[int], piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a stream in pieces, as ISA-L gets them (``piece`` 1) or joined first."""
    monkeypatch.setattr(inflate, "_PIECE", piece)
    raw = _raw()
    source = _source(_cut(zlib.compress(raw, 6), sizes))
    buf = bytearray(len(raw) + 1000)
    # out of order places, with gaps: each span takes the stream's next bytes
    spans = [(50, 1000), (0, 10), (2000, len(raw) - 1010)]
    assert source.into(buf, spans)
    assert source.finished()
    assert bytes(buf[50:1050]) == raw[:1000]
    assert bytes(buf[0:10]) == raw[1000:1010]
    assert bytes(buf[2000 : 2000 + len(raw) - 1010]) == raw[1010:]


def test_a_place_outside_the_buffer_is_refused() -> None:
    source = _source([zlib.compress(_raw())])
    with pytest.raises(ValueError, match="do not fit"):
        source.into(bytearray(100), [(90, 11)])


def test_small_pieces_are_joined_and_large_ones_kept() -> None:
    """8 KB IDAT chunks are joined into pieces of 1 MB; a large one is read where it is."""
    small, large = b"a" * 8192, b"b" * inflate._PIECE
    pieces = [small] * 200 + [large, small, b"", small]
    joined = inflate._coalesced(pieces)
    assert [len(p) for p in joined] == [128 * 8192, 72 * 8192, inflate._PIECE, 2 * 8192]
    assert joined[2] is large
    assert b"".join(joined) == b"".join(pieces)


def test_asked_in_many_calls_gives_the_same_bytes() -> None:
    raw = _raw()
    source = _source([zlib.compress(raw)])
    got = bytearray()
    for start in range(0, len(raw), 65535):
        part = bytearray(min(65535, len(raw) - start))
        assert source.into(part, [(0, len(part))])
        got += part
    assert got == raw and source.finished()


def test_a_stream_that_ends_early_is_told() -> None:
    raw = _raw()
    data = zlib.compress(raw)
    source = _source([data[: len(data) // 2]])
    assert not source.into(bytearray(len(raw)), [(0, len(raw))])
    assert not source.finished()


def test_more_bytes_than_asked_for_is_not_finished() -> None:
    raw = _raw()
    source = _source([zlib.compress(raw)])
    assert source.into(bytearray(len(raw) - 1), [(0, len(raw) - 1)])
    assert not source.finished()


def test_a_wrong_checksum_is_not_finished() -> None:
    raw = _raw()
    data = bytearray(zlib.compress(raw))
    data[-1] ^= 1
    source = _source([bytes(data)])
    assert source.into(bytearray(len(raw)), [(0, len(raw))])
    assert not source.finished()


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_damage_is_told_never_a_crash(where: float) -> None:
    raw = _raw()
    data = bytearray(zlib.compress(raw))
    at = int(len(data) * where)
    data[at : at + 8] = b"\xff" * 8
    source = _source([bytes(data)])
    # told by ISA-L (a bad block or symbol), or by the end: too short, too long, or an
    # Adler-32 that is not the inflated bytes'
    assert not (source.into(bytearray(len(raw)), [(0, len(raw))]) and source.finished())


@pytest.mark.parametrize(
    "head",
    [b"\x78\xbb", b"\x79\x9c", b"\x78\x9d", b""],  # a preset dictionary, not deflate, bad check
    ids=["dictionary", "not deflate", "bad check", "empty"],
)
def test_a_header_it_does_not_take_reads_nothing(head: bytes) -> None:
    data = head + zlib.compress(_raw())[2:] if head else b""
    source = _source([data])
    assert not source.into(bytearray(10), [(0, 10)])
    assert not source.finished()


def test_without_isal_s_api_there_is_no_inflater(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inflate, "_isal", lambda: None)
    assert inflate.inflater([zlib.compress(b"abc")]) is None
