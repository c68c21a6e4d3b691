"""Structure-aware damage for the fuzzer: found fields of a real file's format overwritten with values that
parsers trip on (zero, all ones, an address pointing back at its own structure or at another, the file's size),
bytes inserted inside structures (shifting every address after them), lengths rewritten, messages nested deep or
repeated, pickle opcodes inserted. Each damage is a pure function of a real file's bytes and a few integers, so a
case found by a campaign is kept as an ``@example`` of those integers.

Formats: HDF5 (superblock, symbol-table nodes, v1 B-trees, local and global heaps, v1 object headers and their
messages), zip (local headers, central directory, end records: of .keras and PyTorch files), protobuf (every
length-delimited field found by walking the wire format: GraphDef, SavedModel, MetaGraphDef, ONNX), pickle
(opcode streams of PyTorch files: a zip's data.pkl, re-zipped consistently, or a legacy file's first pickle) and
safetensors (the header's length and its JSON).
"""

from __future__ import annotations

import io
import json
import pickletools
import struct
import zipfile
from collections.abc import Callable
from functools import lru_cache

Field = tuple[int, int]  # (offset, width in bytes)
HUGE = (2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1)


def _values(data: bytes, field: Field, structures: list[int]) -> list[int]:
    """What a field of ``width`` bytes at ``offset`` is set to: boundaries, its own structure's address, another
    structure's, the file's size, near its old value."""
    offset, width = field
    top = 2 ** (8 * width) - 1
    old = int.from_bytes(data[offset : offset + width], "little")
    own = max((s for s in structures if s <= offset), default=0)
    choices = [0, 1, top, top // 2, own, len(data), len(data) - 1, old + 1, max(old - 1, 0), old * 2, old + 8]
    choices += structures[:8]
    return [value & top for value in choices]


def _overwrite(data: bytes, field: Field, value: int) -> bytes:
    offset, width = field
    return data[:offset] + value.to_bytes(width, "little") + data[offset + width :]


def _field_damage(fields: Callable[[bytes], tuple[list[int], list[Field]]]) -> Callable[..., bytes]:
    """Damage by field: ``overwrite`` one found field with one of its values, or ``insert`` ``count`` bytes at it."""

    def damage(data: bytes, op: str, structure: int, field: int, value: int, count: int) -> bytes:
        structures, found = fields(data)
        if not found:
            return data
        chosen = found[(structure * 7919 + field) % len(found)]
        if op == "insert":
            return data[: chosen[0]] + bytes([value % 256]) * (1 + count % 16) + data[chosen[0] :]
        choices = _values(data, chosen, structures)
        return _overwrite(data, chosen, choices[value % len(choices)])

    return damage


# HDF5 (files h5py writes by default: superblock v0, v1 object headers, symbol tables)


@lru_cache(maxsize=16)
def hdf5_fields(data: bytes) -> tuple[list[int], list[Field]]:
    """The structures of an HDF5 file and their length, count and address fields."""
    structures, fields = [0], [(13, 1), (14, 1), (16, 2), (18, 2), (24, 8), (32, 8), (40, 8), (48, 8)]
    fields += [(56, 8), (64, 8)]  # the root group's symbol table entry: link name, object header address
    headers = {int.from_bytes(data[64:72], "little")}
    at = data.find(b"SNOD")
    while at >= 0:  # symbol table nodes: entry count, and each entry's name offset and object header address
        structures.append(at)
        fields.append((at + 6, 2))
        for entry in range(min(int.from_bytes(data[at + 6 : at + 8], "little"), 64)):
            start = at + 8 + 40 * entry
            fields += [(start, 8), (start + 8, 8), (start + 16, 4)]
            headers.add(int.from_bytes(data[start + 8 : start + 16], "little"))
        at = data.find(b"SNOD", at + 4)
    for signature, layout in (
        (b"TREE", [(6, 2), (8, 8), (16, 8), (24, 8), (32, 8), (40, 8)]),
        (b"HEAP", [(8, 8), (16, 8), (24, 8)]),
        (b"GCOL", [(8, 8), (16, 2), (24, 8)]),
    ):
        at = data.find(signature)
        while at >= 0:
            structures.append(at)
            fields += [(at + offset, width) for offset, width in layout]
            at = data.find(signature, at + 4)
    for header in sorted(h for h in headers if 0 < h < len(data) - 16 and data[h] == 1):
        structures.append(header)
        fields += [(header + 2, 2), (header + 4, 4), (header + 8, 4)]
        message, end = header + 16, header + 16 + int.from_bytes(data[header + 8 : header + 12], "little")
        while message + 8 <= min(end, len(data)):  # each message: type, size, flags, then its data
            size = int.from_bytes(data[message + 2 : message + 4], "little")
            fields += [(message, 2), (message + 2, 2), (message + 4, 1), (message + 8, 8), (message + 16, 8)]
            message += 8 + size
    return sorted(structures), [f for f in fields if f[0] + f[1] <= len(data)]


hdf5 = _field_damage(hdf5_fields)


# zip (the records of APPNOTE.TXT section 4.3)

_ZIP_RECORDS = {
    b"PK\x03\x04": [(4, 2), (6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)],
    b"PK\x01\x02": [(10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (34, 2), (42, 4)],
    b"PK\x05\x06": [(4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],
    b"PK\x06\x06": [(4, 8), (24, 8), (32, 8), (40, 8), (48, 8)],
    b"PK\x06\x07": [(4, 4), (8, 8), (16, 4)],
}


@lru_cache(maxsize=16)
def zip_fields(data: bytes) -> tuple[list[int], list[Field]]:
    structures, fields = [], []
    for signature, layout in _ZIP_RECORDS.items():
        at = data.find(signature)
        while at >= 0:
            structures.append(at)
            fields += [(at + offset, width) for offset, width in layout if at + offset + width <= len(data)]
            at = data.find(signature, at + 4)
    return sorted(structures), fields


zip_records = _field_damage(zip_fields)


# protobuf (the wire format, walked without a schema)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


@lru_cache(maxsize=16)
def protobuf_fields(data: bytes) -> list[tuple[int, int, int, int]]:
    """Every length-delimited field: (start of its tag, start of its length, start of its payload, its end)."""
    found: list[tuple[int, int, int, int]] = []

    def walk(start: int, end: int, depth: int) -> bool:
        at, inside = start, []
        try:
            while at < end:
                tag_at = at
                tag, at = _varint(data, at)
                kind = tag & 7
                if kind == 0:
                    _, at = _varint(data, at)
                elif kind == 1:
                    at += 8
                elif kind == 5:
                    at += 4
                elif kind == 2:
                    length, payload = _varint(data, at)
                    inside.append((tag_at, at, payload, payload + length))
                    at = payload + length
                else:
                    return False
                if at > end or tag >> 3 == 0:
                    return False
        except ValueError:
            return False
        found.extend(inside)
        if depth < 12 and len(found) < 20000:
            for _, _, payload, stop in inside:
                if stop - payload >= 2:
                    walk(payload, stop, depth + 1)
        return True

    walk(0, len(data), 0)
    return found


def protobuf(data: bytes, op: str, structure: int, field: int, value: int, count: int) -> bytes:
    """``length`` rewrites a field's length (to a boundary, or off by a little); ``nest`` wraps the field in
    itself ``count`` levels deep; ``repeat`` repeats it; ``wiretype`` gives its tag another wire type."""
    fields = protobuf_fields(data)
    if not fields:
        return data
    tag_at, length_at, payload, end = fields[(structure * 7919 + field) % len(fields)]
    whole, tag = data[tag_at:end], data[tag_at:length_at]
    if op == "length":
        old = end - payload
        choices = [0, 1, old + 1, max(old - 1, 0), old * 2, len(data), *HUGE]
        length = encode_varint(choices[value % len(choices)])
        if value % 13 == 12:  # an overlong varint: eleven bytes
            length = b"\xff" * 10 + b"\x01"
        return data[:length_at] + length + data[payload:]
    if op == "nest":
        nested = whole
        for _ in range(1 + count % 3000 * (1 + value % 40)):  # up to 120,000 levels, each a few bytes
            nested = tag + encode_varint(len(nested)) + nested
            if len(nested) > 8 << 20:
                break
        return data[:tag_at] + nested + data[end:]
    if op == "repeat":
        times = min(1 + count * (1 + value % 100), max(1, (8 << 20) // max(len(whole), 1)))
        return data[:tag_at] + whole * times + data[end:]
    number = _varint(data, tag_at)[0] >> 3
    return data[:tag_at] + encode_varint(number << 3 | (value % 8)) + data[length_at:]


# pickle (opcode streams)

_OPCODES = [
    b"(",  # MARK
    b"0",  # POP
    b"1",  # POP_MARK
    b"2",  # DUP
    b"]",  # EMPTY_LIST
    b"}",  # EMPTY_DICT
    b")",  # EMPTY_TUPLE
    b"e",  # APPENDS
    b"u",  # SETITEMS
    b"t",  # TUPLE
    b"R",  # REDUCE
    b"b",  # BUILD
    b".",  # STOP
    b"\x81",  # NEWOBJ
    b"\x94",  # MEMOIZE
    b"Q",  # BINPERSID
    b"h\xff",  # BINGET of a memo never set
    b"j\xff\xff\xff\x7f",  # LONG_BINGET 2**31 - 1
    b"X\xff\xff\xff\x7f",  # BINUNICODE claiming 2 GiB
    b"\x8e" + struct.pack("<Q", 2**62),  # BINBYTES8 claiming 4 EiB
    b"\x8b\xff\xff\xff\x7f",  # LONG4 claiming 2 GiB
    b"\x95" + struct.pack("<Q", 2**40),  # FRAME of a TiB
    b"\x80\x09",  # PROTO 9
    b"cos\nsystem\n",  # GLOBAL os.system
    b"\x8c\x02os\x8c\x06system\x93",  # STACK_GLOBAL os.system
    b"ctorch._utils\n_rebuild_tensor_v2\n",  # GLOBAL a rebuild function, out of place
    b"K\xff",  # BININT1
    b"J\xff\xff\xff\xff",  # BININT -1
]


@lru_cache(maxsize=16)
def pickle_ops(data: bytes) -> list[int]:
    """The position of every opcode of the first pickle in ``data``."""
    positions = []
    try:
        for _, _, position in pickletools.genops(data):
            positions.append(position)
    except Exception:
        pass
    return positions or [0]


def pickle_stream(data: bytes, op: str, structure: int, field: int, value: int, count: int) -> bytes:
    """``insert`` an opcode (``count`` times over: a deep nest, a memo or stack flood), ``delete`` or ``repeat``
    one, or ``swap`` two."""
    positions = pickle_ops(data)
    index = (structure * 7919 + field) % len(positions)
    at = positions[index]
    end = positions[index + 1] if index + 1 < len(positions) else len(data)
    if op == "insert":
        times = 1 + (count % 64) ** 3 if value % 3 == 0 else 1 + count % 4  # up to 250,000 opcodes
        return data[:at] + _OPCODES[value % len(_OPCODES)] * times + data[at:]
    if op == "delete":
        return data[:at] + data[end:]
    if op == "repeat":
        return data[:at] + data[at:end] * (2 + count % 1000) + data[end:]
    other = positions[(index + 1 + value) % len(positions)]
    if other <= at:
        return data
    other_end = next((p for p in positions if p > other), len(data))
    return data[:at] + data[other:other_end] + data[end:other] + data[at:end] + data[other_end:]


def in_zip_member(member: Callable[[str], bool], damage: Callable[..., bytes]) -> Callable[..., bytes]:
    """``damage`` applied to the first member of a zip that ``member`` picks, the archive written again
    consistently (sizes, checksums) by zipfile, so that the damage reaches the member's parser."""

    def rezipped(data: bytes, *args: object) -> bytes:
        source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
            done = False
            for info in source.infolist():
                content = source.read(info)
                if not done and member(info.filename):
                    content, done = damage(content, *args), True
                target.writestr(info, content)
        return out.getvalue()

    return rezipped


# safetensors (an 8-byte header length, then the header: JSON)


def safetensors(data: bytes, op: str, structure: int, field: int, value: int, count: int) -> bytes:
    """``length`` rewrites the header's length; ``tensor`` damages one entry of the header (shape, dtype,
    offsets); ``deep`` nests a value ``count`` levels deep; ``duplicate`` names a tensor twice."""
    length = int.from_bytes(data[:8], "little")
    header, rest = data[8 : 8 + length], data[8 + length :]
    if op == "length":
        choices = [0, 1, length - 1, length + 1, len(data), len(data) - 7, *HUGE]
        return struct.pack("<Q", choices[value % len(choices)]) + data[8:]
    table = json.loads(header)
    names = sorted(name for name in table if name != "__metadata__")
    name = names[(structure * 7919 + field) % len(names)]
    if op == "tensor":
        entry, start, end = table[name], *table[name]["data_offsets"]
        damages = [
            ("shape", [2**62]),
            ("shape", [-1]),
            ("shape", [0]),
            ("shape", [2**31, 2**31]),
            ("shape", "3"),
            ("shape", [1.5]),
            ("dtype", "F128"),
            ("dtype", 7),
            ("data_offsets", [0, 2**64]),
            ("data_offsets", [end, start]),
            ("data_offsets", [0, 0]),
            ("data_offsets", [start, len(rest) + 1]),
            ("data_offsets", [-8, end]),
            ("data_offsets", [start]),
        ]
        key, damaged = damages[value % len(damages)]
        entry[key] = damaged
    elif op == "deep":
        depth = 1 + count % 2000 * (1 + value % 100)  # up to 200,000 levels
        text = json.dumps(table)
        return _with_header(text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}", rest)
    else:
        text = json.dumps(table)
        return _with_header(text[:-1] + f", {json.dumps(name)}: {json.dumps(table[name])}" + "}", rest)
    return _with_header(json.dumps(table), rest)


def _with_header(text: str, rest: bytes) -> bytes:
    header = text.encode()
    return struct.pack("<Q", len(header)) + header + rest


# What each fuzzed file takes: its damage, and the operations of that damage

FIELD_OPS = ("overwrite", "insert")
DAMAGES: dict[str, tuple[Callable[..., bytes], tuple[str, ...]]] = {
    "hdf5": (hdf5, FIELD_OPS),
    "zip": (zip_records, FIELD_OPS),
    "keras-hdf5": (in_zip_member(lambda name: name.endswith(".h5"), hdf5), FIELD_OPS),
    "protobuf": (protobuf, ("length", "nest", "repeat", "wiretype")),
    "pickle": (pickle_stream, ("insert", "delete", "repeat", "swap")),
    "torch-pickle": (
        in_zip_member(lambda name: name.endswith("data.pkl"), pickle_stream),
        ("insert", "delete", "repeat", "swap"),
    ),
    "safetensors": (safetensors, ("length", "tensor", "deep", "duplicate")),
}
