"""Bad metadata documents: each gets one clear line, nothing leaks, nothing is written."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.base import MetadataError, MetadataSource
from providers.metadata_source import FetchLimits
from providers.sap_odata import SapODataProvider
from tests.fixtures.corpora import corpus_file

V2_HEAD = (
    b'<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" '
    b'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">'
    b'<edmx:DataServices m:DataServiceVersion="2.0">'
)
SCHEMA = (
    b'<Schema Namespace="S" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">'
    b'<EntityType Name="T"><Key><PropertyRef Name="Id"/></Key>'
    b'<Property Name="Id" Type="Edm.String" Nullable="false"/><Property Name="Text" Type="Edm.String"/>'
    b"</EntityType>"
    b'<EntityContainer Name="C" m:IsDefaultEntityContainer="true"><EntitySet Name="Ts" EntityType="S.T"/>'
    b"</EntityContainer></Schema>"
)
V2_TAIL = b"</edmx:DataServices></edmx:Edmx>"
VALID_V2 = V2_HEAD + SCHEMA + V2_TAIL


@pytest.fixture(autouse=True)
def nothing_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test runs in an empty directory that must still be empty afterwards."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    yield
    assert os.listdir(workdir) == []


@pytest.fixture
def provider() -> SapODataProvider:
    return SapODataProvider(allow_private=True)


def _refused(provider: SapODataProvider, data: bytes, **options: str) -> str:
    with pytest.raises(MetadataError) as caught:
        provider.parse_metadata(data, options)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


def test_the_minimal_valid_document_parses(provider: SapODataProvider) -> None:
    catalog = provider.parse_metadata(VALID_V2)
    assert catalog.object_names() == ["Ts"]


def test_malformed_xml(provider: SapODataProvider) -> None:
    message = _refused(provider, VALID_V2[:-20])
    assert message.startswith("the metadata document is not well-formed XML: ")


def test_xxe_to_a_local_file_is_refused_and_leaks_nothing(provider: SapODataProvider, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    document = (
        b'<?xml version="1.0"?>\n'
        b'<!DOCTYPE edmx:Edmx [<!ENTITY xxe SYSTEM "file://'
        + str(secret).encode()
        + b'">]>\n'
        + VALID_V2.replace(b'Name="Text"', b'Name="&xxe;"')
    )
    message = _refused(provider, document)
    assert message == "the metadata document contains a DTD (<!DOCTYPE ...>), which is refused for safety"
    assert "TOP-SECRET" not in message


def test_xxe_to_etc_passwd_in_utf16_is_refused(provider: SapODataProvider) -> None:
    document = (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + VALID_V2.decode().replace('Name="Text"', 'Name="&xxe;"')
    ).encode("utf-16")
    assert "contains a DTD" in _refused(provider, document)


def test_a_dtd_after_a_long_comment_is_refused(provider: SapODataProvider) -> None:
    document = b"<!--" + b" " * 10_000 + b"-->\n<!DOCTYPE x [<!ENTITY e 'v'>]>\n" + VALID_V2
    assert "contains a DTD" in _refused(provider, document)


def test_billion_laughs_is_refused(provider: SapODataProvider) -> None:
    entities = b'<!ENTITY lol0 "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10)
    )
    document = b"<!DOCTYPE lolz [" + entities + b"]>" + VALID_V2.replace(b'Name="Text"', b'Name="&lol9;"')
    assert "contains a DTD" in _refused(provider, document)


@pytest.mark.parametrize(
    "document",
    [b"<html><body><h1>Logon</h1></body></html>", b'<feed xmlns="http://www.w3.org/2005/Atom"/>'],
)
def test_xml_that_is_not_edmx(provider: SapODataProvider, document: bytes) -> None:
    assert _refused(provider, document).startswith(
        "the document is XML but not an OData $metadata (EDMX) document: its root element is <"
    )


def test_edmx_without_a_schema(provider: SapODataProvider) -> None:
    assert "has no edmx:DataServices/Schema element" in _refused(provider, V2_HEAD + V2_TAIL)


@pytest.mark.parametrize("document", [b"", b"  \r\n\t "])
def test_an_empty_document(provider: SapODataProvider, document: bytes) -> None:
    assert _refused(provider, document) == "the metadata document is empty"


async def test_an_empty_uploaded_file_names_the_file(provider: SapODataProvider) -> None:
    with pytest.raises(MetadataError) as caught:
        await provider.discover(MetadataSource(kind="file", location="service.edmx", data=b""))
    assert str(caught.value) == "the file service.edmx is empty"


def test_a_file_over_the_size_cap_from_the_environment(
    provider: SapODataProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IB_METADATA_MAX_BYTES", "1024")
    data = corpus_file("sap-v2/GWSAMPLE_BASIC.edmx").read_bytes()
    assert _refused(provider, data) == (
        "the metadata document is larger than the limit of 1 kB (IB_METADATA_MAX_BYTES)"
    )


async def test_pasted_text_over_the_providers_size_cap() -> None:
    provider = SapODataProvider(limits=FetchLimits(max_bytes=100))
    with pytest.raises(MetadataError, match="larger than the limit of 100 bytes"):
        await provider.discover(MetadataSource(kind="text", data=VALID_V2))


def test_a_nonsense_size_cap_setting_is_reported(
    provider: SapODataProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IB_METADATA_MAX_BYTES", "lots")
    assert _refused(provider, VALID_V2) == "IB_METADATA_MAX_BYTES='lots' is not a whole number of bytes"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (VALID_V2.replace(b'Version="1.0" ', b""), "edmx:Edmx has no Version attribute"),
        (VALID_V2.replace(b' m:DataServiceVersion="2.0"', b""), "Version 1.0 without a DataServiceVersion"),
        (VALID_V2.replace(b'Version="1.0"', b'Version="3.0"'), "Version='3.0' is neither 1.0 (V2) nor 4.0"),
        (
            VALID_V2.replace(b'DataServiceVersion="2.0"', b'DataServiceVersion="3.0"'),
            "DataServiceVersion 3.0",
        ),
        (
            VALID_V2.replace(
                b"http://schemas.microsoft.com/ado/2007/06/edmx", b"http://docs.oasis-open.org/odata/ns/edmx"
            ),
            "Version 1.0 (V2) but the OData V4 EDMX namespace",
        ),
    ],
)
def test_an_unclear_odata_version_asks_for_a_choice(
    provider: SapODataProvider, document: bytes, reason: str
) -> None:
    message = _refused(provider, document)
    assert message.startswith("cannot tell the OData version: ")
    assert reason in message
    assert message.endswith("; choose OData 2.0 or 4.0")


@pytest.mark.parametrize("version", ["2.0", "4.0"])
def test_a_chosen_version_reads_an_unclear_document(provider: SapODataProvider, version: str) -> None:
    unclear = VALID_V2.replace(b'Version="1.0" ', b"")
    catalog = provider.parse_metadata(unclear, {"odata_version": version})
    assert catalog.runtime == {"odata_version": version}
    assert catalog.object("Ts").keys[0].name == "Id"


def test_an_unknown_chosen_version(provider: SapODataProvider) -> None:
    assert (
        _refused(provider, VALID_V2, odata_version="3.0") == "unknown OData version '3.0': choose 2.0 or 4.0"
    )


def test_a_document_without_entity_sets(provider: SapODataProvider) -> None:
    document = VALID_V2.replace(b'<EntitySet Name="Ts" EntityType="S.T"/>', b"")
    assert _refused(provider, document) == (
        "the $metadata document describes no entity sets: there is nothing to integrate"
    )


def test_pyodata_never_sees_a_doctype(provider: SapODataProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    import pyodata.v2.model as pyodata_model

    original = pyodata_model.MetadataBuilder.__init__

    def spy(self: object, xml: bytes, config: object = None) -> None:
        seen.append(xml)
        original(self, xml, config)

    monkeypatch.setattr(pyodata_model.MetadataBuilder, "__init__", spy)
    _refused(provider, b"<!DOCTYPE x [<!ENTITY e 'v'>]>" + VALID_V2)
    assert seen == []
    provider.parse_metadata(VALID_V2)
    assert len(seen) == 1 and b"<!DOCTYPE" not in seen[0]


def test_an_inconsistent_v2_document_is_one_line(provider: SapODataProvider) -> None:
    broken = VALID_V2.replace(b'EntityType="S.T"', b'EntityType="S.Missing"')
    assert _refused(provider, broken).startswith("the OData V2 metadata is inconsistent: ")
