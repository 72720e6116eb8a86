"""A small YAML writer for ``competition.yaml`` and ``metadata.yaml``, so the core needs no PyYAML.

It writes block-style YAML of mappings, lists, strings, integers, floats, booleans and None, with
every string double-quoted (YAML's double-quoted style, escapes included), so that no value can be
read back as another type (``"no"``, ``"1e3"``, ``"2026-01-01"`` stay strings). Codabench reads the
file with PyYAML's ``safe_load``; ``tests/codabench/test_yamltext.py`` reads every output back that way.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _quote(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code < 0xE000:  # a lone surrogate cannot be written as UTF-8
            raise ValueError(f"string holds a lone surrogate (U+{code:04X}): {text!r}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"YAML value is not a finite number: {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    raise TypeError(f"cannot write a {type(value).__name__} as YAML: {value!r}")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"YAML keys are strings here, got {key!r}")
    return (
        key if _PLAIN_KEY.match(key) and key not in ("null", "true", "false", "yes", "no", "on", "off") else _quote(key)
    )


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        lines = []
        for key, item in value.items():
            if _is_block(item):
                lines.append(f"{pad}{_key(key)}:")
                lines.extend(_lines(item, indent + 2))
            else:
                lines.append(f"{pad}{_key(key)}: {_inline(item)}")
        return lines
    lines = []
    for item in value:
        if _is_block(item):
            # "- " then the item's first line, the rest indented under it
            inner = _lines(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines.extend(inner[1:])
        else:
            lines.append(f"{pad}- {_inline(item)}")
    return lines


def _is_block(value: Any) -> bool:
    return isinstance(value, (Mapping, list, tuple)) and len(value) > 0


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return _scalar(value)


def dump_yaml(document: Mapping[str, Any] | Sequence[Any]) -> str:
    """``document`` as block-style YAML text, ending with a newline.

    >>> print(dump_yaml({"version": 2, "title": "Ref-VPS: a test", "phases": [{"index": 0, "tasks": [0]}]}), end="")
    version: 2
    title: "Ref-VPS: a test"
    phases:
      - index: 0
        tasks:
          - 0
    """
    if not isinstance(document, (Mapping, list, tuple)):
        raise TypeError("a YAML document here is a mapping or a list")
    return "\n".join(_lines(document, 0)) + "\n"
