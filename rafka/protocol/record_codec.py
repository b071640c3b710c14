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


def _select() -> tuple[str, ModuleType]:
    if os.environ.get("RAFKA_PURE_PYTHON") != "1":
        try:
            from rafka.protocol import _record_codec
        except ImportError:
            pass
        else:
            return "c", _record_codec
    # Imported only when used: a broker with the extension never loads the twin.
    from rafka.protocol import record_codec_py

    return "python", record_codec_py


IMPLEMENTATION, _impl = _select()
decode_records = _impl.decode_records
decode_record_deltas = _impl.decode_record_deltas
encode_records = _impl.encode_records

__all__ = ["IMPLEMENTATION", "decode_record_deltas", "decode_records", "encode_records"]
