"""Java .properties syntax, as Kafka reads server.properties."""

from __future__ import annotations

import re
from pathlib import Path

from rafka.broker.config.definitions import ConfigError

# ---------------------------------------------------------------------------------------------
# Java .properties syntax


_WHITESPACE = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def parse_properties(text: str, origin: str = "<properties>") -> list[tuple[str, str, int]]:
    """Parse Java .properties text into (key, value, line number) in file order.

    Follows java.util.Properties.load: # and ! comments, key=value / key:value / key value,
    continuation lines (an odd number of trailing backslashes), escapes \\t \\n \\r \\f \\uXXXX,
    any other escaped character stands for itself.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    entries: list[tuple[str, str, int]] = []
    index = 0
    while index < len(lines):
        lineno = index + 1
        line = lines[index].lstrip(_WHITESPACE)
        index += 1
        if not line or line[0] in "#!":
            continue  # comment lines never continue, even when ending in a backslash
        while _continues(line):
            line = line[:-1]
            if index >= len(lines):
                break
            line += lines[index].lstrip(_WHITESPACE)
            index += 1
        key, value = _split_key_value(line)
        entries.append((_unescape(key, origin, lineno), _unescape(value, origin, lineno), lineno))
    return entries


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_key_value(line: str) -> tuple[str, str]:
    escaped = False
    has_separator = False
    key_end = len(line)
    value_start = len(line)
    for pos, char in enumerate(line):
        if not escaped and char in "=:":
            key_end, value_start, has_separator = pos, pos + 1, True
            break
        if not escaped and char in _WHITESPACE:
            key_end, value_start = pos, pos + 1
            break
        escaped = char == "\\" and not escaped
    # Skip whitespace around the separator; a key ended by whitespace may still have one = or :.
    while value_start < len(line):
        char = line[value_start]
        if char in _WHITESPACE:
            value_start += 1
        elif not has_separator and char in "=:":
            has_separator = True
            value_start += 1
        else:
            break
    return line[:key_end], line[value_start:]


def _unescape(raw: str, origin: str, lineno: int) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        pos += 1
        if char != "\\":
            out.append(char)
            continue
        if pos >= len(raw):
            break  # a lone trailing backslash (at end of file) stands for nothing
        char = raw[pos]
        pos += 1
        if char == "u":
            digits = raw[pos : pos + 4]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ConfigError(None, f"{origin}:{lineno}: malformed \\uXXXX escape")
            out.append(chr(int(digits, 16)))
            pos += 4
        else:
            out.append(_ESCAPES.get(char, char))
    return "".join(out)


def read_properties_file(path: Path) -> list[tuple[str, str, int]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(None, f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(None, f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # what Java's Properties.load(InputStream) assumes
    return parse_properties(text, str(path))
