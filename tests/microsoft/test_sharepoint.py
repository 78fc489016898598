"""The SharePoint provider: lists and columns from saved Graph JSON and live from the Graph fake
(with the identity peer's tokens), sites, connections, and what the generated package may do."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.base import ConnectionValueError, MetadataError, MetadataSource, SourceError, get_provider
from providers.certificates import CERTIFICATE_FIELD, PRIVATE_KEY_FIELD, generate_certificate
from providers.model import ValueType
from providers.sharepoint import design_scopes, resolve_site, search_sites, site_reference
from tests.fixtures.microsoft import GraphSite, sign_in
from tests.peers.graph_fake import GraphFake

IB = Path(sys.executable).with_name("ib")


def _saved(graph_site: GraphSite) -> MetadataSource:
    return MetadataSource(kind="file", location="lists.json", data=graph_site.saved_lists())


def test_lists_and_columns_from_saved_graph_json(graph_site: GraphSite) -> None:
    catalog = asyncio.run(get_provider("sharepoint").discover(_saved(graph_site)))
    assert [(o.name, o.group) for o in catalog.objects] == [
        ("Project Tasks", "Lists"),
        ("Documents", "Document libraries"),
    ]
    tasks = catalog.object("Project Tasks")
    assert [a.name for a in tasks.attributes] == [
        "id",
        "FileDirRef",
        "Title",
        "Budget",
        "Hours",
        "Done",
        "Due",
        "Stage",
        "Tags",
        "AssignedTo",
        "Score",
        "Modified",
    ]
    assert tasks.keys[0].name == "id" and tasks.attribute("id").read_only
    assert not tasks.capabilities.countable and tasks.runtime["list_id"] == graph_site.tasks.id
    stage, tags = tasks.attribute("Stage"), tasks.attribute("Tags")
    assert stage.type is ValueType.ENUM and stage.enum is not None
    assert [m.value for m in stage.enum.members] == ["Planned", "Active", "Closed"]
    assert tags.collection and not tags.sortable
    assert tasks.attribute("Budget").type is ValueType.DECIMAL
    assert tasks.attribute("Title").max_length == 255
    for read_only in ("AssignedTo", "Score", "Modified", "FileDirRef"):
        assert tasks.attribute(read_only).read_only, read_only


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"{}", "not Graph list JSON with columns"),
        (b"[", "not valid JSON"),
        (b'{"value": []}', "no visible list"),
    ],
)
def test_saved_json_that_is_not_lists_is_refused(document: bytes, words: str) -> None:
    source = MetadataSource(kind="file", location="lists.json", data=document)
    with pytest.raises(MetadataError, match=words):
        asyncio.run(get_provider("sharepoint").discover(source))


def test_ib_generate_from_saved_json_has_no_count_action(graph_site: GraphSite, tmp_path: Path) -> None:
    saved = tmp_path / "lists.json"
    saved.write_bytes(graph_site.saved_lists())
    result = subprocess.run(
        [
            *(str(IB), "generate", "--provider", "sharepoint", "--metadata", str(saved)),
            *("--objects", "Project Tasks", "--app", "Sales lists", "--module", "sales_lists"),
            *("--out", str(tmp_path / "out")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    driver = (tmp_path / "out" / "sales_lists" / "driver.py").read_text()
    assert "def search_project_tasks(" in driver and "def create_project_tasks(" in driver
    assert "def count_" not in driver


@pytest.mark.parametrize(
    ("typed", "reference"),
    [
        ("https://contoso.sharepoint.com/sites/sales/", "contoso.sharepoint.com:/sites/sales"),
        ("contoso.sharepoint.com:/sites/sales", "contoso.sharepoint.com:/sites/sales"),
        ("contoso.sharepoint.com,1,2", "contoso.sharepoint.com,1,2"),
    ],
)
def test_site_references(typed: str, reference: str) -> None:
    assert site_reference(typed) == reference


def test_a_site_without_a_path_is_refused() -> None:
    with pytest.raises(ConnectionValueError, match="with its path"):
        site_reference("https://contoso.sharepoint.com")


@pytest.mark.peers
def test_sites_are_searched_and_lists_read_live(graph_site: GraphSite) -> None:
    token = sign_in(graph_site.tenant, design_scopes()).access_token
    http = graph_site.http
    sites = asyncio.run(search_sites(token, "sales", http))
    assert [(s.name, s.id) for s in sites] == [("Sales", graph_site.site.id)]
    assert asyncio.run(resolve_site(token, graph_site.site.web_url, http)).id == graph_site.site.id
    source = MetadataSource(
        kind="url", location=graph_site.site.web_url, password=token, options={"lists": "Project Tasks"}
    )
    catalog = asyncio.run(graph_site.provider.discover(source))
    assert catalog.service_name == "Sales" and catalog.object_names() == ["Project Tasks"]
    with pytest.raises(SourceError, match="press Sign in with Microsoft again"):
        asyncio.run(search_sites("expired", "sales", http))


@pytest.fixture
def storm(graph_site: GraphSite) -> Iterator[GraphFake]:
    """The Graph fake, whose storm (see GraphFake.throttle) ends with the test."""
    yield graph_site.fake
    graph_site.fake.throttle(0)


def _live(graph_site: GraphSite) -> MetadataSource:
    token = sign_in(graph_site.tenant, design_scopes()).access_token
    return MetadataSource(kind="url", location=graph_site.site.web_url, password=token)


@pytest.mark.peers
def test_a_short_throttling_storm_is_ridden_out(graph_site: GraphSite, storm: GraphFake) -> None:
    source = _live(graph_site)
    # the site, then the site again: both answered 429 before the lists are read
    storm.throttle(2, retry_after=1)
    catalog = asyncio.run(graph_site.provider.discover(source))
    assert catalog.object_names() == ["Project Tasks", "Documents"]
    # Graph also throttles with 503 and Retry-After
    storm.throttle(1, retry_after=1, status=503)
    values, secrets = graph_site.connection()
    result = asyncio.run(graph_site.provider.test_connection(values, secrets))
    assert result.ok, result.message


@pytest.mark.peers
def test_a_long_throttling_storm_says_when_to_try_again(graph_site: GraphSite, storm: GraphFake) -> None:
    source = _live(graph_site)
    storm.throttle(10, retry_after=30)
    storm.requests.clear()
    said = "Microsoft Graph is throttling requests (429); try again in 30 s"
    with pytest.raises(SourceError) as raised:
        asyncio.run(graph_site.provider.discover(source))
    assert str(raised.value) == said
    # no waiting for a wait longer than the wizard can: one request, and the storm goes on
    assert len(storm.requests) == 1
    values, secrets = graph_site.connection()
    result = asyncio.run(graph_site.provider.test_connection(values, secrets))
    assert not result.ok and result.message == said
    # the site search answers Slack's options request: it cannot wait long either
    token = source.password or ""
    with pytest.raises(SourceError) as raised:
        asyncio.run(search_sites(token, "sales", graph_site.http))
    assert str(raised.value) == said


@pytest.mark.peers
def test_a_storm_outlasting_the_tries_gives_up_with_the_last_wait(
    graph_site: GraphSite, storm: GraphFake
) -> None:
    source = _live(graph_site)
    storm.throttle(3, retry_after=1)
    storm.requests.clear()
    with pytest.raises(SourceError) as raised:
        asyncio.run(graph_site.provider.discover(source))
    assert str(raised.value) == "Microsoft Graph is throttling requests (429); try again in 1 s"
    assert len(storm.requests) == 3  # THROTTLE_TRIES, then the wizard hears of it


@pytest.mark.peers
def test_a_connection_passes_its_test_and_answers_a_token_and_the_site_root(graph_site: GraphSite) -> None:
    values, secrets = graph_site.connection()
    result = asyncio.run(graph_site.provider.test_connection(values, secrets))
    assert result.ok, result.message
    answer = asyncio.run(graph_site.provider.connection_answer(values, secrets))
    assert answer["url"] == f"{graph_site.fake.base_url}/sites/{graph_site.site.id}/"
    assert answer["auth"]["type"] == "bearer" and "PRIVATE KEY" not in json.dumps(answer)


@pytest.mark.peers
def test_a_rejected_certificate_and_an_unknown_site_fail_the_test_clearly(graph_site: GraphSite) -> None:
    stranger = generate_certificate("never uploaded")
    values, _ = graph_site.connection(**{CERTIFICATE_FIELD: stranger.certificate_pem})
    secrets = {PRIVATE_KEY_FIELD: stranger.private_key_pem.decode("ascii")}
    result = asyncio.run(graph_site.provider.test_connection(values, secrets))
    assert not result.ok and "rejected the certificate" in result.message

    values, secrets = graph_site.connection(site="https://contoso.sharepoint.com/sites/nowhere")
    result = asyncio.run(graph_site.provider.test_connection(values, secrets))
    assert not result.ok and "no such site" in result.message


def test_admin_instructions_name_the_graph_permissions() -> None:
    provider = get_provider("sharepoint")
    text = provider.admin_instructions(
        {"integration": "sales", "certificate": "sales.pem", "environment": "qa"}
    ).text
    # Slack's mrkdwn has no nested bold: the environment stays bold on its own
    assert text.startswith("*SharePoint Online connection for sales* in *qa*\n")
    assert "`Sites.Selected`" in text and "`Sites.ReadWrite.All`" in text and "admin consent" in text
    assert "`sales.pem`" in text
    assert provider.needs_certificate and not provider.runtime.supports_count
    assert [f.name for f in provider.connection_schema()][:3] == ["site", "tenant_id", "client_id"]
