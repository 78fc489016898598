"""Identifier rules for generated packages: the one place that turns metadata names into Python names.

Metadata names are untrusted text. They become identifiers only through :func:`identifier`
(ASCII letters, digits and ``_``; never a keyword, a builtin or a name the package itself uses)
and reach generated code otherwise only as escaped literals (:func:`docstring_lines` here,
:mod:`generator.literals` for values).

The rules are fixed lists rather than whatever the running interpreter reports, so the same
metadata gives the same names (and the same wheel) on every Python version.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Collection
from typing import Literal

from generator.errors import GenerationError

Style = Literal["snake", "pascal", "upper"]

MAX_IDENTIFIER_LENGTH = 60
"""Long enough for real names, short enough that generated signatures stay within 120 columns."""

KEYWORDS = frozenset(
    "False None True and as assert async await break class continue def del elif else except finally for "
    "from global if import in is lambda nonlocal not or pass raise return try while with yield "
    "_ case match type".split()
)
BUILTINS = frozenset(
    "ArithmeticError AssertionError AttributeError BaseException BaseExceptionGroup BlockingIOError "
    "BrokenPipeError BufferError BytesWarning ChildProcessError ConnectionAbortedError ConnectionError "
    "ConnectionRefusedError ConnectionResetError DeprecationWarning EOFError Ellipsis EncodingWarning "
    "EnvironmentError Exception ExceptionGroup FileExistsError FileNotFoundError FloatingPointError "
    "FutureWarning GeneratorExit IOError ImportError ImportWarning IndentationError IndexError "
    "InterruptedError IsADirectoryError KeyError KeyboardInterrupt LookupError MemoryError "
    "ModuleNotFoundError NameError NotADirectoryError NotImplemented NotImplementedError OSError "
    "OverflowError PendingDeprecationWarning PermissionError ProcessLookupError PythonFinalizationError "
    "RecursionError ReferenceError ResourceWarning RuntimeError RuntimeWarning StopAsyncIteration "
    "StopIteration SyntaxError SyntaxWarning SystemError SystemExit TabError TimeoutError TypeError "
    "UnboundLocalError UnicodeDecodeError UnicodeEncodeError UnicodeError UnicodeTranslateError "
    "UnicodeWarning UserWarning ValueError Warning ZeroDivisionError abs aiter all anext any ascii bin "
    "bool breakpoint bytearray bytes callable chr classmethod compile complex copyright credits delattr "
    "dict dir divmod enumerate eval exec exit filter float format frozenset getattr globals hasattr hash "
    "help hex id input int isinstance issubclass iter len license list locals map max memoryview min "
    "next object oct open ord pow print property quit range repr reversed round set setattr slice sorted "
    "staticmethod str sum super tuple type vars zip".split()
)
PYTHON_RESERVED = KEYWORDS | BUILTINS
"""Never used as generated names as they are: keywords, soft keywords and builtins."""

RECORD_MEMBERS = frozenset({"etag", "null_attributes", "formatted_values", "datetime"})
"""Names a model field cannot take: ``Record``'s own members and the ``datetime`` module that the
models' annotations refer to."""

ACTION_PARAMETERS = frozenset(
    {
        "connection", "client", "obj", "record", "attributes_to_send", "etag", "filters",
        "advanced_filter", "order_by", "advanced_order_by", "skip", "top", "page_size", "page",
        "driver", "models", "to_send", "partial", "formatted_values", "links",
    }
)
"""Parameter, local and module names the generated actions use; key parameters never take them."""

PACKAGE_NAMES = frozenset(
    {
        "Record", "Enum", "Flag", "Decimal", "UUID", "Any", "TypeVar", "TypedDict", "dataclass", "datetime",
        "AsyncIterator", "Iterator", "Sequence", "asynccontextmanager", "contextmanager",
        "Connection", "BasicAuth", "ApiKeyAuth", "BearerAuth", "ManagerResolver", "Client", "AsyncClient",
        "BasicFilter", "FilterOperator", "OrderBy", "SortDirection", "Page", "FieldDescriptor",
        "NavigationDescriptor", "ObjectDescriptor", "ServiceDescriptor", "SERVICE", "errors", "driver",
        "models", "service",
    }
)
"""Module-level names of generated modules (their imports and ``SERVICE``): model, enum and
constant names never take them."""

_MODULE_NAME_RESERVED = frozenset(sys.stdlib_module_names) | frozenset(
    {"httpx", "httpcore", "h11", "anyio", "sniffio", "idna", "certifi", "typing_extensions"}
)
_DISTRIBUTION_NAME = re.compile(r"[a-z]([a-z0-9_]*[a-z0-9])?")

_ENCODED_CHARACTER = re.compile(r"_x([0-9A-Fa-f]{4})_")
_ACRONYM_BOUNDARY = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CASE_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_WORD_SEPARATOR = re.compile(r"[^A-Za-z0-9]+")
# Letters that NFKD does not decompose into ASCII.
_TRANSLITERATION = str.maketrans(
    {
        "ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "đ": "d",
        "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D", "ı": "i",
    }
)


def decode_xml_escapes(name: str) -> str:
    """Decode XmlConvert-style escapes (``_x002F_`` is ``/``), as SAP and SharePoint put in names."""
    return _ENCODED_CHARACTER.sub(lambda match: chr(int(match.group(1), 16)), name)


def words(name: str) -> list[str]:
    """Lowercase ASCII words of a metadata name: ``A_BusinessPartner`` -> ``a``, ``business``, ``partner``.

    Accents are dropped (``Geschäft`` -> ``geschaft``), other non-ASCII letters are dropped.
    """
    text = unicodedata.normalize("NFKD", decode_xml_escapes(name).translate(_TRANSLITERATION))
    text = text.encode("ascii", "ignore").decode("ascii")
    text = _ACRONYM_BOUNDARY.sub(r"\1_\2", text)
    text = _CASE_BOUNDARY.sub(r"\1_\2", text)
    return [word.lower() for word in _WORD_SEPARATOR.split(text) if word]


def snake_case(name: str) -> str:
    """``BusinessPartnerSet`` -> ``business_partner_set``; may be empty or start with a digit."""
    return "_".join(words(name))


def pascal_case(name: str) -> str:
    """``A_BusinessPartnerType`` -> ``ABusinessPartnerType``; may be empty or start with a digit."""
    return "".join(word[:1].upper() + word[1:] for word in words(name))


def _converted(name: str, style: Style, fallback: str) -> str:
    converted = pascal_case(name) if style == "pascal" else snake_case(name)
    if style == "upper":
        converted = converted.upper()
    if not converted:
        return fallback
    if converted[0].isdigit():
        converted = fallback + converted if style == "pascal" else f"{fallback}_{converted}"
    return converted[:MAX_IDENTIFIER_LENGTH].rstrip("_") or fallback


def identifier(name: str, style: Style, fallback: str, reserved: Collection[str] = ()) -> str:
    """The Python identifier for a metadata name, in ``style``.

    An empty result becomes ``fallback``, a leading digit gets ``fallback`` in front, a keyword,
    builtin or ``reserved`` name gets a ``_`` suffix. At most :data:`MAX_IDENTIFIER_LENGTH` long.
    """
    converted = _converted(name, style, fallback)
    if converted in PYTHON_RESERVED or converted in reserved:
        converted += "_"
    return converted


def stem(name: str, fallback: str) -> str:
    """The snake_case part of action names (``search_<stem>``), never ending in ``_async`` so that
    a synchronous action cannot take an async twin's name."""
    converted = _converted(name, "snake", fallback)
    return converted + "_" if converted.endswith("_async") else converted


class Namespace:
    """Hands out unique identifiers in one scope; clashes get ``_2``, ``_3``, ... in claim order."""

    def __init__(self, reserved: Collection[str] = ()) -> None:
        self._taken: set[str] = set(reserved)

    def claim(self, candidate: str) -> str:
        name = candidate
        counter = 2
        while name in self._taken:
            suffix = f"_{counter}"
            name = candidate[: MAX_IDENTIFIER_LENGTH - len(suffix)] + suffix
            counter += 1
        self._taken.add(name)
        return name

    def add(self, name: str, style: Style, fallback: str, reserved: Collection[str] = ()) -> str:
        """Claim the identifier for metadata ``name`` (see :func:`identifier`)."""
        return self.claim(identifier(name, style, fallback, reserved))


def python_name_problem(name: str, reserved: Collection[str] = ()) -> str | None:
    """Why ``name``, chosen by a user (a rename), cannot be an attribute name; None if it can."""
    if not (name.isascii() and name.isidentifier()):
        return f"{name!a} is not a Python identifier"
    if name.startswith("_"):
        return f"{name!r} starts with '_'"
    if name != name.lower():
        return f"{name!r} is not snake_case"
    if name in PYTHON_RESERVED or name in reserved:
        return f"{name!r} is reserved (try {name + '_'!r})"
    if len(name) > MAX_IDENTIFIER_LENGTH:
        return f"{name!r} is longer than {MAX_IDENTIFIER_LENGTH} characters"
    return None


def validate_module_name(name: str, reserved: Collection[str] = ()) -> str:
    """``name`` if it can be a generated package's import and distribution name.

    ``reserved`` adds distribution names the package must not shadow (its own dependencies).
    Raises :class:`GenerationError` with one line saying why not.
    """
    shown = ascii(name)
    if not name:
        raise GenerationError("module name is empty (use a name like 'sales_orders')")
    if not _DISTRIBUTION_NAME.fullmatch(name):
        raise GenerationError(
            f"module name {shown} is not valid: use lowercase letters, digits and '_', "
            "starting with a letter and not ending with '_'"
        )
    if name in KEYWORDS:
        raise GenerationError(f"module name {shown} is a Python keyword")
    if name in BUILTINS or name in _MODULE_NAME_RESERVED or name in {r.lower() for r in reserved}:
        raise GenerationError(f"module name {shown} would shadow a standard or required module")
    if len(name) > MAX_IDENTIFIER_LENGTH:
        raise GenerationError(f"module name {shown} is longer than {MAX_IDENTIFIER_LENGTH} characters")
    return name


def suggest_module_name(text: str) -> str:
    """A valid module name from a service or application name (``GWSAMPLE_BASIC`` -> ``gwsample_basic``)."""
    candidate = identifier(text, "snake", "integration").rstrip("_")
    try:
        return validate_module_name(candidate)
    except GenerationError:
        return f"{candidate}_integration"


_DOCSTRING_COLUMNS = 88
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _columns(char: str) -> int:
    """Columns a character takes in the generated source, escaping included."""
    if char in '\\"':
        return 2
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _width(text: str) -> int:
    if text.isascii():
        return len(text) + text.count("\\") + text.count('"')
    return sum(_columns(ch) for ch in text)


def docstring_lines(text: str, columns: int = _DOCSTRING_COLUMNS) -> list[str]:
    """Untrusted text as lines of a triple-quoted docstring body.

    Control and format characters become spaces, whitespace collapses, and ``\\`` and ``"`` are
    escaped, so nothing can end the literal or form an escape sequence. Lines are at most
    ``columns`` columns wide (long words are split).
    """
    if text.isascii() and text.isprintable():
        cleaned = text
    else:
        cleaned = "".join(" " if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text)
    lines: list[str] = []
    line: list[str] = []
    width = 0
    for token in (chunk for word in cleaned.split() for chunk in _chunks(word, columns)):
        token_width = _width(token)
        if line and width + 1 + token_width > columns:
            lines.append(" ".join(line))
            line, width = [], 0
        width += token_width + (1 if line else 0)
        line.append(token)
    if line:
        lines.append(" ".join(line))
    return [ln.replace("\\", "\\\\").replace('"', '\\"') for ln in lines]


def _chunks(word: str, columns: int) -> list[str]:
    if _width(word) <= columns:
        return [word]
    chunks: list[str] = []
    chunk, width = "", 0
    for ch in word:
        if chunk and width + _columns(ch) > columns:
            chunks.append(chunk)
            chunk, width = "", 0
        chunk += ch
        width += _columns(ch)
    return [*chunks, chunk] if chunk else chunks
