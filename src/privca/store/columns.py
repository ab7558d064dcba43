"""Column types that keep the inventory small without changing what the code sees.

A million certificates must fit in well under a gigabyte of SQLite (issue 13), so the
certificates table stores each value in its compact form and converts at the boundary:
the records (store/records.py) keep hex strings, aware datetimes and plain DER.

- `HexBytes`: a hex string (serial, SHA-256) stored as its bytes, half the size in the
  row and in every index holding it.
- `Instant`: an aware datetime; on SQLite whole microseconds since the epoch as an
  integer (8 bytes instead of a 26-character text), elsewhere the native timestamptz.
- `CompressedDer`: a certificate's DER deflated with a preset dictionary of what every
  privca leaf certificate shares (algorithm identifiers, extension OIDs, key headers),
  roughly 40 % smaller; values written before it are read as they are.
- `PackedDetail`: an audit entry's detail, canonical JSON text, stored with each quoted
  64-digit hex string (a fingerprint, a key hash) as its 32 bytes and the keys every
  `issued` entry repeats as one byte each (migration 0012): ~105 bytes instead of ~230.
  It reads back as exactly the text that was hashed.
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from typing import Any

import sqlalchemy as sa

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Aware datetimes stored as UTC and read back as UTC on every database.

    SQLite keeps the wall clock and drops the offset, so convert on the way in."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; privca uses aware UTC times")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class HexBytes(sa.types.TypeDecorator[str]):
    """A lowercase hex string stored as bytes.

    `serial=True` for certificate serials, written without leading zeros (serial_hex):
    an odd number of digits gets a zero nibble in front, which reading drops again. A
    digest keeps every digit (its length is fixed)."""

    impl = sa.LargeBinary
    cache_ok = True

    def __init__(self, *, serial: bool) -> None:
        super().__init__()
        self.serial = serial

    def process_bind_param(self, value: str | None, dialect: Any) -> bytes | None:
        if value is None:
            return None
        digits = value if len(value) % 2 == 0 else "0" + value
        return bytes.fromhex(digits)

    def process_result_value(self, value: bytes | str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):  # a value from before migration 0011 (never on a store)
            return value
        digits = bytes(value).hex()
        if self.serial and digits:
            return digits.lstrip("0") or "0"
        return digits


class Instant(UtcDateTime):
    """An aware UTC datetime; an integer of microseconds since the epoch on SQLite."""

    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> Any:
        utc = super().process_bind_param(value, dialect)
        if utc is None or dialect.name != "sqlite":
            return utc
        return (utc - _EPOCH) // _MICROSECOND

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if isinstance(value, int):
            return _EPOCH + dt.timedelta(microseconds=value)
        if isinstance(value, str):  # SQLite text from before migration 0011
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        return super().process_result_value(value, dialect)


# The dictionary deflate starts from: a P-256 leaf certificate privca issued (profile
# server-client, two names) from a throwaway CA, its key and signature random. Its bytes
# are fixed forever: every value written with the VERSION_1 marker is inflated with
# exactly these. A new dictionary would get a new marker beside it.
_DICTIONARY_V1 = bytes.fromhex(
    "30820216308201bca0030201020210456d7de58eeddc8bef65047d2845466f300a06082a8648ce3d0403"
    "0230283126302406035504030c1d4578616d706c652049737375696e672043412049737375696e672043"
    "41301e170d3236313230323036303830325a170d3237303330323036313330325a302731253023060355"
    "04030c1c68303030303030302e7465616d30302e636f72702e6578616d706c653059301306072a8648ce"
    "3d020106082a8648ce3d03010703420004b2462c9a3bae93a858e15d1c525a0e8a772394ed4b9fc09ec7"
    "84de0fddffb95c90a8899972eaf75b479784bf392151cb4dc683724173c02cc073ea9b4c98698aa381c8"
    "3081c5300c0603551d130101ff04023000300e0603551d0f0101ff040403020780301d0603551d0e0416"
    "0414b4030e7758ccc7f6aff22cbf3f2ce8343fe9a181301f0603551d230418301680141613eb671d0343"
    "090350df031ade4d8602689e51301d0603551d250416301406082b0601050507030106082b0601050507"
    "030230460603551d11043f303d821c68303030303030302e7465616d30302e636f72702e6578616d706c"
    "65821d616c742d68303030303030302e7376632e636f72702e6578616d706c65300a06082a8648ce3d04"
    "030203480030450220636cb9edf42cd9128e8bef87f33680a887b587aad86c8a4f3648574b2061d50b02"
    "2100ed4e22d1e361e73d4810add71db474990183d3594d42f3dec66aaed2371fd451"
)
_VERSION_1 = b"\x01"  # DER always starts with 0x30 (a SEQUENCE): the markers never clash
_WBITS = -15  # raw deflate: no zlib header or checksum (the signature covers the bytes)


def deflate_der(der: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, _WBITS, 9, zdict=_DICTIONARY_V1)
    packed = _VERSION_1 + compressor.compress(der) + compressor.flush()
    # Bytes that start with the marker (never DER) are always packed, or they would be
    # taken for packed ones when read.
    return packed if len(packed) < len(der) or der.startswith(_VERSION_1) else der


def inflate_der(stored: bytes) -> bytes:
    if not stored.startswith(_VERSION_1):
        return stored
    decompressor = zlib.decompressobj(_WBITS, zdict=_DICTIONARY_V1)
    return decompressor.decompress(stored[1:]) + decompressor.flush()


class CompressedDer(sa.types.TypeDecorator[bytes]):
    """DER bytes, deflated with the preset dictionary above when that makes them smaller."""

    impl = sa.LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Any) -> bytes | None:
        return None if value is None else deflate_der(bytes(value))

    def process_result_value(self, value: bytes | None, dialect: Any) -> bytes | None:
        return None if value is None else inflate_der(bytes(value))


# An audit detail is canonical JSON: ASCII, every control character escaped. So bytes below
# 0x20 never occur in it and can stand for what the log repeats. This table is fixed
# forever: every value written with the _PACKED_V1 marker unpacks with exactly these.
# A new table would get a new marker beside it.
_PACKED_V1 = 0x01
_RAW = 0x00  # marks a text stored as it is (one that is not canonical JSON)
_DIGEST = 0x02  # followed by 32 bytes: the quoted 64-digit lowercase hex string
_TOKENS_V1 = (
    b'{"fingerprint":',  # 0x03
    b',"issuer":',
    b',"key_sha256":',
    b',"names":["',
    b'"],"profile":"',
    b'server"}',
    b'server-client"}',
    b'client"}',
    b'","',
    b'{"reason":"',
    b'{"by":"',
    b'"}',
    b"{}",
)
_FIRST_TOKEN = 0x03
_TOKEN_OF = {token: bytes([_FIRST_TOKEN + i]) for i, token in enumerate(_TOKENS_V1)}
_PACK = re.compile(
    rb'"([0-9a-f]{64})"|' + b"|".join(re.escape(t) for t in sorted(_TOKENS_V1, key=len)[::-1])
)
_UNPACK = re.compile(rb"\x02(.{32})|([\x03-\x1f])", re.DOTALL)
_CANONICAL = re.compile(rb"[\x20-\x7e]*")


def _pack_one(match: re.Match[bytes]) -> bytes:
    digest = match.group(1)
    if digest is not None:
        return bytes([_DIGEST]) + bytes.fromhex(digest.decode("ascii"))
    return _TOKEN_OF[match.group(0)]


def _unpack_one(match: re.Match[bytes]) -> bytes:
    digest = match.group(1)
    if digest is not None:
        return b'"' + digest.hex().encode("ascii") + b'"'
    index = match.group(2)[0] - _FIRST_TOKEN
    # A byte no table entry stands for (altered in the store) is left as it is: a control
    # character, so the text is no longer JSON and its entry shows as altered.
    return _TOKENS_V1[index] if index < len(_TOKENS_V1) else match.group(2)


def pack_detail(text: str) -> bytes:
    """The stored form of an audit detail (canonical JSON text)."""
    raw = text.encode("utf-8")
    if _CANONICAL.fullmatch(raw) is None:  # not canonical JSON: kept verbatim
        return bytes([_RAW]) + raw
    return bytes([_PACKED_V1]) + _PACK.sub(_pack_one, raw)


def unpack_detail(stored: bytes | str) -> str:
    """The text pack_detail was given; text stored before migration 0012 as it is."""
    if isinstance(stored, str):  # unpacked text, or packed bytes an SQL function made text
        if not stored.startswith((chr(_PACKED_V1), chr(_RAW))):
            return stored
        stored = stored.encode("utf-8", "surrogateescape")
    value = bytes(stored)
    # Bytes altered in the store may not decode: they read back with U+FFFD in their
    # place, a text whose hash does not match, so the entry shows as altered.
    if value[:1] == bytes([_PACKED_V1]):
        return _UNPACK.sub(_unpack_one, value[1:]).decode("ascii", "replace")
    if value[:1] == bytes([_RAW]):
        return value[1:].decode("utf-8", "replace")
    return value.decode("utf-8", "replace")


class PackedDetail(sa.types.TypeDecorator[str]):
    """An audit entry's detail text, stored packed (pack_detail above)."""

    impl = sa.LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> bytes | None:
        return None if value is None else pack_detail(value)

    def process_result_value(self, value: bytes | str | None, dialect: Any) -> str | None:
        return None if value is None else unpack_detail(value)


__all__ = [
    "CompressedDer",
    "HexBytes",
    "Instant",
    "PackedDetail",
    "UtcDateTime",
    "deflate_der",
    "inflate_der",
    "pack_detail",
    "unpack_detail",
]
