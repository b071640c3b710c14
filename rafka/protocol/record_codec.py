"""The record codec in use: the C extension `_record_codec`, or its pure-Python twin.

`RAFKA_PURE_PYTHON=1` forces the twin; it is also used when the extension is not built.
Both expose the same functions (see record_codec_py for the format and the tuple shapes):
    decode_records(data, count, /) -> list[(attributes, timestamp_delta, offset_delta,
                                            key, value, ((header_key, header_value), ...))]
    decode_record_deltas(data, count, /) -> list[(offset_delta, timestamp_delta)]
    encode_records(records, /) -> bytes
"""

from __future__ import annotations

import os
from types import ModuleType

from rafka.protocol import record_codec_py


def _select() -> ModuleType:
    if os.environ.get("RAFKA_PURE_PYTHON") == "1":
        return record_codec_py
    try:
        from rafka.protocol import _record_codec
    except ImportError:
        return record_codec_py
    return _record_codec


_impl = _select()

IMPLEMENTATION = "python" if _impl is record_codec_py else "c"
decode_records = _impl.decode_records
decode_record_deltas = _impl.decode_record_deltas
encode_records = _impl.encode_records

__all__ = ["IMPLEMENTATION", "decode_record_deltas", "decode_records", "encode_records"]
