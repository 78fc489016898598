"""The SOQL the fake Salesforce understands: a strict parser and evaluator for the subset the
generated drivers emit (and a little more, so a wrong query fails the way Salesforce fails it).

SELECT f, ... | COUNT() FROM Object [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
[LIMIT n] [OFFSET n]; cond: comparisons (=, !=, <>, <, >, <=, >=, LIKE, [NOT] IN (...),
INCLUDES/EXCLUDES (...)) joined by AND/OR (never both on one level without parentheses, as in
SOQL), NOT, parentheses. String literals take SOQL's backslash escapes and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

TEXT_TYPES = frozenset(
    {
        "id",
        "reference",
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "combobox",
        "encryptedstring",
        "picklist",
        "multipicklist",
    }
)
NUMBER_TYPES = frozenset({"int", "long", "double", "currency", "percent"})


class SoqlError(Exception):
    """A query Salesforce would refuse: ``code`` is its errorCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Literal:
    kind: str  # string, like, number, boolean, null, date, datetime, time
    value: Any  # the decoded value (a like pattern stays raw, escapes included)


@dataclass(frozen=True)
class Comparison:
    field: str
    operator: str  # =, !=, <, >, <=, >=, LIKE, IN, NOT IN, INCLUDES, EXCLUDES
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class Junction:
    operator: str  # AND, OR
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Negation:
    part: Condition


Condition = Comparison | Junction | Negation


@dataclass(frozen=True)
class Ordering:
    field: str
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    text: str
    object: str
    fields: tuple[str, ...] | None  # None: SELECT COUNT()
    where: Condition | None = None
    order_by: tuple[Ordering, ...] = ()
    limit: int | None = None
    offset: int | None = None
    conditions: list[Comparison] = field(default_factory=list, compare=False)  # flat, for tests


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<time>\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<operator>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {
    **{
        letter: char
        for letters, char in (("nN", "\n"), ("rR", "\r"), ("tT", "\t"), ("bB", "\b"), ("fF", "\f"))
        for letter in letters
    },
    '"': '"',
    "'": "'",
    "\\": "\\",
}
_KEYWORDS = frozenset(
    "SELECT FROM WHERE AND OR NOT LIKE IN INCLUDES EXCLUDES ORDER BY ASC DESC NULLS FIRST LAST "
    "LIMIT OFFSET COUNT TRUE FALSE NULL".split()
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position] == "'":
                raise SoqlError("MALFORMED_QUERY", f"unterminated string literal at {text[position:][:30]!r}")
            raise SoqlError("MALFORMED_QUERY", f"unexpected character {text[position]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            value = match.group()
            if kind == "word" and value.upper() in _KEYWORDS:
                kind, value = "keyword", value.upper()
            tokens.append((kind, value))
        position = match.end()
    return tokens


def decode_string(raw: str, like: bool = False) -> str:
    """The text of a quoted SOQL literal; ``like`` keeps ``\\%``, ``\\_`` and ``\\\\`` escaped."""
    out: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        escaped = raw[index + 1 : index + 2]
        if like and escaped in ("%", "_", "\\"):
            out.append("\\" + escaped)  # stays escaped for like_matcher
        elif escaped in _ESCAPES:
            out.append(_ESCAPES[escaped])
        else:
            raise SoqlError(
                "MALFORMED_QUERY", f"Invalid string literal: illegal character sequence '\\{escaped}'"
            )
        index += 2
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.conditions: list[Comparison] = []

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.index += 1
        return token

    def accept(self, value: str) -> bool:
        if self.peek()[1] == value and self.peek()[0] in ("keyword", "punct", "operator"):
            self.index += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {self.peek()[1] or 'end of query'!r}")

    def name(self) -> str:
        kind, value = self.take()
        if kind != "word":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {value or 'end of query'!r}")
        return value

    def integer(self) -> int:
        kind, value = self.take()
        if kind != "number" or not value.isdigit():
            raise SoqlError("MALFORMED_QUERY", f"expected a whole number, not {value!r}")
        return int(value)

    def query(self) -> Query:
        self.expect("SELECT")
        fields: tuple[str, ...] | None
        if self.peek() == ("keyword", "COUNT"):
            self.take()
            self.expect("(")
            self.expect(")")
            fields = None
        else:
            names = [self.name()]
            while self.accept(","):
                names.append(self.name())
            fields = tuple(names)
        self.expect("FROM")
        obj = self.name()
        where = None
        if self.accept("WHERE"):
            where = self.condition()
        order: list[Ordering] = []
        if self.accept("ORDER"):
            self.expect("BY")
            order.append(self.ordering())
            while self.accept(","):
                order.append(self.ordering())
        limit = self.integer() if self.accept("LIMIT") else None
        offset = self.integer() if self.accept("OFFSET") else None
        if self.peek()[0] != "end":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {self.peek()[1]!r}")
        return Query(self.text, obj, fields, where, tuple(order), limit, offset, self.conditions)

    def ordering(self) -> Ordering:
        name = self.name()
        descending = False
        if self.accept("DESC"):
            descending = True
        else:
            self.accept("ASC")
        nulls_first = not descending
        if self.accept("NULLS"):
            if self.accept("FIRST"):
                nulls_first = True
            else:
                self.expect("LAST")
                nulls_first = False
        return Ordering(name, descending, nulls_first)

    def condition(self) -> Condition:
        parts = [self.factor()]
        connector = None
        while self.peek() in (("keyword", "AND"), ("keyword", "OR")):
            word = self.take()[1]
            if connector is not None and word != connector:
                # SOQL needs parentheses to mix them
                raise SoqlError("MALFORMED_QUERY", f"unexpected token: {word!r}")
            connector = word
            parts.append(self.factor())
        return parts[0] if connector is None else Junction(connector, tuple(parts))

    def factor(self) -> Condition:
        if self.accept("NOT"):
            return Negation(self.factor())
        if self.accept("("):
            inner = self.condition()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        name = self.name()
        kind, value = self.take()
        operator: str
        if kind == "operator":
            operator = "!=" if value == "<>" else value
            literal: Literal | tuple[Literal, ...] = self.literal()
        elif (kind, value) == ("keyword", "LIKE"):
            operator = "LIKE"
            token_kind, raw = self.take()
            if token_kind != "string":
                raise SoqlError("MALFORMED_QUERY", "LIKE needs a quoted pattern")
            literal = Literal("like", decode_string(raw[1:-1], like=True))
        elif (kind, value) in (("keyword", "IN"), ("keyword", "INCLUDES"), ("keyword", "EXCLUDES")):
            operator = value
            literal = self.literal_list()
        elif (kind, value) == ("keyword", "NOT") and self.accept("IN"):
            operator = "NOT IN"
            literal = self.literal_list()
        else:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {value or 'end of query'!r}")
        comparison = Comparison(name, operator, literal)
        self.conditions.append(comparison)
        return comparison

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect("(")
        values = [self.literal()]
        while self.accept(","):
            values.append(self.literal())
        self.expect(")")
        return tuple(values)

    def literal(self) -> Literal:
        kind, value = self.take()
        if kind == "string":
            return Literal("string", decode_string(value[1:-1]))
        if kind == "number":
            return Literal("number", float(value))
        if kind == "keyword" and value in ("TRUE", "FALSE"):
            return Literal("boolean", value == "TRUE")
        if kind == "keyword" and value == "NULL":
            return Literal("null", None)
        if kind == "date":
            return Literal("date", date.fromisoformat(value))
        if kind == "datetime":
            return Literal("datetime", parse_datetime(value))
        if kind == "time":
            return Literal("time", parse_time(value))
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: {value or 'end of query'!r}")


def parse(text: str) -> Query:
    return _Parser(text).query()


def parse_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def parse_time(text: str) -> time:
    return time.fromisoformat(text.removesuffix("Z"))


def like_matcher(pattern: str) -> Callable[[str], bool]:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    compiled = re.compile("".join(out), re.IGNORECASE | re.DOTALL)
    return lambda value: compiled.fullmatch(value) is not None


# --------------------------------------------------------------------------------------------
# Evaluation over stored records (wire values as Salesforce stores them)
# --------------------------------------------------------------------------------------------

_EXPECTED = {
    "boolean": ("boolean", "of type boolean and should not be enclosed in quotes"),
    "date": ("date", "of type date and should not be enclosed in quotes"),
    "datetime": ("datetime", "of type dateTime and should not be enclosed in quotes"),
    "time": ("time", "of type time and should not be enclosed in quotes"),
}


def python_value(sf_type: str, stored: Any) -> Any:
    """A stored wire value as something comparable."""
    if stored is None:
        return None
    if sf_type in TEXT_TYPES:
        return str(stored).casefold()
    if sf_type in NUMBER_TYPES:
        return float(stored)
    if sf_type == "date":
        return date.fromisoformat(stored)
    if sf_type == "datetime":
        return parse_datetime(stored)
    if sf_type == "time":
        return parse_time(stored)
    return stored


def _check_literal(name: str, sf_type: str, literal: Literal) -> None:
    if literal.kind == "null":
        return
    if sf_type in TEXT_TYPES:
        if literal.kind != "string":
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                f"value of filter criterion for field '{name}' must be of type string and should be enclosed "
                "in quotes",
            )
        return
    if sf_type in NUMBER_TYPES:
        if literal.kind != "number":
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                f"value of filter criterion for field '{name}' must be of type double and should not be "
                "enclosed in quotes",
            )
        return
    expected = _EXPECTED.get(sf_type)
    if expected is not None and literal.kind != expected[0]:
        raise SoqlError(
            "INVALID_QUERY_FILTER_OPERATOR",
            f"value of filter criterion for field '{name}' must be {expected[1]}",
        )
    if expected is None:
        raise SoqlError("INVALID_FIELD", f"field '{name}' can not be filtered in a query call")


def _literal_value(sf_type: str, literal: Literal) -> Any:
    if literal.kind == "string":
        return literal.value.casefold()
    return literal.value


def matcher(
    condition: Condition, types: Mapping[str, Mapping[str, Any]], obj: str
) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over stored records; SoqlError for fields, operators or literals Salesforce refuses."""
    if isinstance(condition, Junction):
        parts = [matcher(p, types, obj) for p in condition.parts]
        if condition.operator == "AND":
            return lambda record: all(p(record) for p in parts)
        return lambda record: any(p(record) for p in parts)
    if isinstance(condition, Negation):
        inner = matcher(condition.part, types, obj)
        return lambda record: not inner(record)
    name = condition.field
    described = types.get(name)
    if described is None:
        raise SoqlError("INVALID_FIELD", no_such_column(name, obj))
    if not described.get("filterable", True):
        raise SoqlError("INVALID_FIELD", f"field '{name}' can not be filtered in a query call")
    sf_type = str(described.get("type"))
    operator = condition.operator
    if operator == "LIKE":
        assert isinstance(condition.value, Literal)
        if sf_type not in TEXT_TYPES:
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on field '{name}': LIKE")
        matches = like_matcher(condition.value.value)
        return lambda record: record.get(name) is not None and matches(str(record[name]))
    if isinstance(condition.value, tuple):
        for literal in condition.value:
            _check_literal(name, sf_type, literal)
        if operator in ("INCLUDES", "EXCLUDES"):
            if sf_type != "multipicklist":
                raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"{operator} needs a multi-select picklist")
            wanted = [set(str(v.value).casefold().split(";")) for v in condition.value]

            def includes(record: Mapping[str, Any]) -> bool:
                chosen = set(str(record.get(name) or "").casefold().split(";"))
                return any(w <= chosen for w in wanted)

            return includes if operator == "INCLUDES" else lambda record: not includes(record)
        values = {_literal_value(sf_type, v) for v in condition.value}
        inside = lambda record: python_value(sf_type, record.get(name)) in values  # noqa: E731
        return inside if operator == "IN" else lambda record: not inside(record)
    literal = condition.value
    _check_literal(name, sf_type, literal)
    if literal.kind == "null":
        if operator == "=":
            return lambda record: record.get(name) is None
        if operator == "!=":
            return lambda record: record.get(name) is not None
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on null for field '{name}'")
    wanted_value = _literal_value(sf_type, literal)
    if sf_type == "multipicklist":
        wanted_set = set(str(literal.value).casefold().split(";"))

        def same(record: Mapping[str, Any]) -> bool:
            return set(str(record.get(name) or "").casefold().split(";")) == wanted_set

        if operator == "=":
            return same
        if operator == "!=":
            return lambda record: not same(record)
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on field '{name}': {operator}")
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a is not None and a < b,
        ">": lambda a, b: a is not None and a > b,
        "<=": lambda a, b: a is not None and a <= b,
        ">=": lambda a, b: a is not None and a >= b,
    }
    test = compare[operator]
    return lambda record: test(python_value(sf_type, record.get(name)), wanted_value)


def no_such_column(name: str, obj: str) -> str:
    return (
        f"\n{name}\n^\nERROR at Row:1:Column:1\nNo such column '{name}' on entity '{obj}'. If you are "
        "attempting to use a custom field, be sure to append the '__c' after the custom field name. "
        "Please reference your WSDL or the describe call for the appropriate names."
    )
