"""Python source fragments for generated modules: literals, 120-column wrapping, import order.

Everything from metadata that is not an identifier (wire names, type names, enum values, runtime
mappings) reaches generated code through :func:`string_literal` or :func:`value_node`, which
escape every character outside printable ASCII, so the output is plain ASCII and a name can
never end its literal.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

LINE_LENGTH = 120
_STRING_CHUNK = 72
_PLAIN = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII except backslash and double quote


def string_literal(value: str) -> str:
    """``value`` as a double-quoted, ASCII-only Python string literal."""
    if _PLAIN.fullmatch(value):
        return f'"{value}"'
    parts: list[str] = ['"']
    for char in value:
        code = ord(char)
        if char in '\\"':
            parts.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            parts.append(char)
        elif char == "\n":
            parts.append("\\n")
        elif char == "\t":
            parts.append("\\t")
        elif code < 0x100:
            parts.append(f"\\x{code:02x}")
        elif code < 0x10000:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    parts.append('"')
    return "".join(parts)


class Node:
    """A fragment that lays itself out flat when it fits and over several lines when not.

    ``flat`` is the one-line form, computed once when the node is built.
    """

    __slots__ = ("flat",)

    def __init__(self, flat: str) -> None:
        self.flat = flat

    def render(self, column: int, indent: int, tail: int) -> str:
        """Source starting at ``column``; continuation lines at ``indent``; ``tail`` columns follow."""
        return self.flat


class Code(Node):
    """Source text used as is (identifiers, numbers, keywords)."""

    __slots__ = ()


class Text(Node):
    """A string value; too long for its line, it becomes a parenthesised implicit concatenation."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        super().__init__(string_literal(value))
        self.value = value

    def render(self, column: int, indent: int, tail: int) -> str:
        if column + len(self.flat) + tail <= LINE_LENGTH or len(self.flat) <= _STRING_CHUNK:
            return self.flat
        pad = " " * (indent + 4)
        chunks = _string_chunks(self.value)
        return "(\n" + "\n".join(pad + chunk for chunk in chunks) + "\n" + " " * indent + ")"


def _string_chunks(value: str) -> list[str]:
    chunks: list[str] = []
    current = ""
    for char in value:
        if len(string_literal(current + char)) > _STRING_CHUNK and current:
            chunks.append(string_literal(current))
            current = ""
        current += char
    chunks.append(string_literal(current))
    return chunks


class Pair(Node):
    """``key=value`` in a call or ``"key": value`` in a dict; the value continues after the key."""

    __slots__ = ("key", "separator", "value")

    def __init__(self, key: Node, separator: str, value: Node) -> None:
        super().__init__(key.flat + separator + value.flat)
        self.key = key
        self.separator = separator
        self.value = value

    def render(self, column: int, indent: int, tail: int) -> str:
        if column + len(self.flat) + tail <= LINE_LENGTH:
            return self.flat
        key = self.key.render(column, indent, len(self.separator) + 1)
        _, newline, last = key.rpartition("\n")
        value_column = (len(last) if newline else column + len(key)) + len(self.separator)
        return key + self.separator + self.value.render(value_column, indent, tail)


class Group(Node):
    """Bracketed items (a call, tuple, list or dict), one per line when they do not fit on one.

    A one-element tuple keeps its trailing comma when flat.
    """

    __slots__ = ("closer", "items", "opener")

    def __init__(self, opener: str, items: Sequence[Node], closer: str, one_tuple: bool = False) -> None:
        inner = ", ".join(item.flat for item in items)
        if one_tuple and len(items) == 1:
            inner += ","
        super().__init__(opener + inner + closer)
        self.opener = opener
        self.items = tuple(items)
        self.closer = closer

    def render(self, column: int, indent: int, tail: int) -> str:
        if not self.items or column + len(self.flat) + tail <= LINE_LENGTH:
            return self.flat
        inner = indent + 4
        lines = [" " * inner + item.render(inner, inner, 1) + "," for item in self.items]
        return self.opener + "\n" + "\n".join(lines) + "\n" + " " * indent + self.closer


def call(function: str, *args: Node, **kwargs: Node) -> Group:
    items = [*args, *(Pair(Code(name), "=", value) for name, value in kwargs.items())]
    return Group(f"{function}(", items, ")")


def dictionary(items: Sequence[tuple[str, Node]]) -> Group:
    """``{"key": value, ...}`` with string keys."""
    return Group("{", [Pair(Text(key), ": ", value) for key, value in items], "}")


def value_node(value: Any) -> Node:
    """A JSON-like value (None, bool, int, float, str, list, tuple, dict with str keys) as a node."""
    if value is None or isinstance(value, bool | int):
        return Code(repr(value))
    if isinstance(value, float):
        return Code(repr(value) if math.isfinite(value) else f'float("{value}")')
    if isinstance(value, str):
        return Text(value)
    if isinstance(value, Mapping):
        return dictionary([(str(key), value_node(item)) for key, item in value.items()])
    if isinstance(value, list):
        return Group("[", [value_node(item) for item in value], "]")
    if isinstance(value, tuple):
        return Group("(", [value_node(item) for item in value], ")", one_tuple=True)
    raise TypeError(f"cannot write a {type(value).__name__} into generated code")


def assignment(target: str, value: Node, indent: int = 0) -> str:
    """``target = value`` laid out within 120 columns, at ``indent``."""
    prefix = " " * indent + target + " = "
    return prefix + value.render(len(prefix), indent, 0)


# Import order exactly as ruff's isort wants it (order-by-type, case-insensitive, natural order).


def _natural_compare(left: str, right: str) -> int:
    """The ``natord`` crate's comparison: digit runs compare by value (with leading-zero runs
    compared digit by digit), everything else by code point."""
    i = j = 0
    while True:
        if i >= len(left) or j >= len(right):
            return (i < len(left)) - (j < len(right))
        a, b = left[i], right[j]
        if a.isascii() and a.isdigit() and b.isascii() and b.isdigit():
            run_a = _digit_run(left, i)
            run_b = _digit_run(right, j)
            if a == "0" or b == "0":
                result = _compare_fraction(run_a, run_b)
                if result:
                    return result
                # Equal fractional runs: natord stops its run comparison at the shorter one.
                i += min(len(run_a), len(run_b))
                j += min(len(run_a), len(run_b))
                continue
            result = _compare_integer(run_a, run_b)
            if result:
                return result
            i += len(run_a)
            j += len(run_b)
            continue
        if a != b:
            return -1 if a < b else 1
        i += 1
        j += 1


def _digit_run(text: str, start: int) -> str:
    end = start
    while end < len(text) and text[end].isascii() and text[end].isdigit():
        end += 1
    return text[start:end]


def _compare_fraction(a: str, b: str) -> int:
    for x, y in zip(a, b, strict=False):
        if x != y:
            return -1 if x < y else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def _compare_integer(a: str, b: str) -> int:
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    return (a > b) - (a < b)


def _member_type(name: str) -> int:
    if len(name) > 1 and name.isupper():
        return 0  # constant
    if name[:1].isupper():
        return 1  # class
    return 2  # variable or function


def _member_compare(left: str, right: str) -> int:
    by_type = _member_type(left) - _member_type(right)
    if by_type:
        return by_type
    return _natural_compare(left.lower(), right.lower()) or _natural_compare(left, right)


def sorted_members(names: Iterable[str]) -> list[str]:
    """Names of one ``from x import ...`` in the order ruff's isort (I001) expects."""
    return sorted(set(names), key=functools.cmp_to_key(_member_compare))


def from_import(module: str, names: Sequence[str]) -> str:
    """``from module import a, b`` sorted; wrapped one per line with a trailing comma when long."""
    members = sorted_members(names)
    line = f"from {module} import {', '.join(members)}"
    if len(line) <= LINE_LENGTH:
        return line
    return f"from {module} import (\n" + "".join(f"    {name},\n" for name in members) + ")"
