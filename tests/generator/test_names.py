"""Identifier rules: conversions, reserved words, clashes, SAP encodings, unsafe text."""

from __future__ import annotations

import keyword

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator import GenerationError
from generator.names import (
    MAX_IDENTIFIER_LENGTH,
    Namespace,
    docstring_lines,
    identifier,
    pascal_case,
    snake_case,
    suggest_module_name,
    validate_module_name,
)


@pytest.mark.parametrize(
    ("name", "snake", "pascal"),
    [
        ("BusinessPartnerSet", "business_partner_set", "BusinessPartnerSet"),
        ("A_BusinessPartner", "a_business_partner", "ABusinessPartner"),
        ("ProductID", "product_id", "ProductId"),
        ("HTTPServer", "http_server", "HttpServer"),
        ("to_Supplier", "to_supplier", "ToSupplier"),
        ("Address2Name", "address2_name", "Address2Name"),
        ("msdyn_workorder", "msdyn_workorder", "MsdynWorkorder"),
        ("Material_x005f_Number", "material_number", "MaterialNumber"),
        ("_x002F_IWBEP_x002F_Order", "iwbep_order", "IwbepOrder"),
        ("Geschäftspartner", "geschaftspartner", "Geschaftspartner"),
        ("Straße", "strasse", "Strasse"),
        ("名前Name", "name", "Name"),
    ],
)
def test_conversions(name: str, snake: str, pascal: str) -> None:
    assert snake_case(name) == snake
    assert pascal_case(name) == pascal


@pytest.mark.parametrize(
    ("name", "style", "expected"),
    [
        ("class", "snake", "class_"),  # keyword
        ("match", "snake", "match_"),  # soft keyword
        ("type", "snake", "type_"),  # builtin and soft keyword
        ("ID", "snake", "id_"),  # builtin
        ("Exception", "pascal", "Exception_"),
        ("None", "pascal", "None_"),
        ("", "snake", "field"),
        ("名前", "snake", "field"),
        ("___", "snake", "field"),
        ("1stPlace", "snake", "field_1st_place"),
        ("2020", "pascal", "Model2020"),
        ("etag", "snake", "etag_"),  # a member of every record
    ],
)
def test_identifiers_avoid_reserved_empty_and_digit_names(name: str, style: str, expected: str) -> None:
    fallback = "Model" if style == "pascal" else "field"
    assert identifier(name, style, fallback, reserved={"etag"}) == expected  # type: ignore[arg-type]


def test_clashes_get_numbered_suffixes_in_claim_order() -> None:
    names = Namespace()
    assert [names.add(n, "snake", "field") for n in ("toMultiLink", "to_MultiLink", "TO_MULTI_LINK")] == [
        "to_multi_link",
        "to_multi_link_2",
        "to_multi_link_3",
    ]


def test_long_names_are_cut_and_stay_unique() -> None:
    names = Namespace()
    long = "Very" * 40
    first, second = names.add(long, "snake", "field"), names.add(long + "X", "snake", "field")
    assert len(first) <= MAX_IDENTIFIER_LENGTH and len(second) <= MAX_IDENTIFIER_LENGTH
    assert first != second


@given(st.text(max_size=80))
def test_any_text_gives_a_safe_identifier(name: str) -> None:
    for style, fallback in (("snake", "field"), ("pascal", "Model"), ("upper", "MEMBER")):
        result = identifier(name, style, fallback)  # type: ignore[arg-type]
        assert result.isascii() and result.isidentifier()
        assert not keyword.iskeyword(result) and not keyword.issoftkeyword(result)
        assert not result.startswith("_")
        assert identifier(name, style, fallback) == result  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_any_text_is_a_safe_docstring(text: str) -> None:
    lines = docstring_lines(text)
    source = 'def f():\n    """' + "\n    ".join(lines) + '\n    """\n'
    namespace: dict[str, object] = {}
    exec(compile(source, "<docstring>", "exec"), namespace)  # noqa: S102 (the point: it must be inert)
    assert set(namespace) == {"__builtins__", "f"}
    assert all(len(line) <= 120 for line in lines)


@pytest.mark.parametrize(
    "text",
    [
        '"""; import os; os.system("echo hi") #',
        'ends with a quote"',
        "back\\slash\\",
        "\\N{BULLET}",
        "a\x00b",
    ],
)
def test_docstring_escapes_what_could_break_out(text: str) -> None:
    body = "\n".join(docstring_lines(text))
    value = eval('"""' + body + '"""')  # noqa: S307 (a literal, checked for what it evaluates to)
    assert value.replace("\n", " ") == " ".join(text.replace("\x00", " ").split())


@pytest.mark.parametrize("name", ["sales_orders", "gwsample", "s4", "a"])
def test_valid_module_names(name: str) -> None:
    assert validate_module_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("Sales-Orders", "not valid"),
        ("SalesOrders", "not valid"),
        ("2fast", "not valid"),
        ("_private", "not valid"),
        ("trailing_", "not valid"),
        ("café", "not valid"),
        ("class", "keyword"),
        ("json", "shadow"),
        ("os", "shadow"),
        ("httpx", "shadow"),
        ("list", "shadow"),
        ("x" * 61, "longer"),
    ],
)
def test_invalid_module_names_get_one_clear_line(name: str, reason: str) -> None:
    with pytest.raises(GenerationError) as error:
        validate_module_name(name)
    message = str(error.value)
    assert reason in message and "\n" not in message


def test_dependencies_are_reserved_module_names() -> None:
    with pytest.raises(GenerationError, match="shadow"):
        validate_module_name("msal", reserved=["msal"])


def test_suggested_module_names_are_valid() -> None:
    assert suggest_module_name("GWSAMPLE_BASIC") == "gwsample_basic"
    assert suggest_module_name("JSON") == "json_integration"
    assert suggest_module_name("") == "integration"
