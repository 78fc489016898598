"""The fake Slack is as strict as Slack, and the driver speaks to apps as Slack does.

The Web API side is exercised with slack_sdk's AsyncWebClient, the client the app uses; the driver
side against a small aiohttp app that verifies signatures with slack_sdk's SignatureVerifier, and
against a real slack_bolt AsyncApp, so payload shapes are the ones bolt parses.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.slack import ADMIN, BYSTANDER, DEVELOPER, Driver, FakeSlack, SlackContractError, wait_for
from tests.slack.blockkit import Json

# Block Kit builders for the views and messages below


def plain(text: str) -> Json:
    return {"type": "plain_text", "text": text}


def section(text: str, **extra: Any) -> Json:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def option(value: str, text: str | None = None) -> Json:
    return {"text": plain(text or value), "value": value}


def text_input(block_id: str, **element: Any) -> Json:
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(block_id),
        "element": {"type": "plain_text_input", "action_id": "value", **element},
    }


def select(block_id: str, options: list[Json], **element: Any) -> Json:
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(block_id),
        "element": {"type": "static_select", "action_id": "choice", "options": options, **element},
    }


def button(action_id: str, value: str = "clicked") -> Json:
    return {"type": "button", "action_id": action_id, "text": plain("Go"), "value": value}


def modal(*blocks: Json, title: str = "Create integration", **extra: Any) -> Json:
    return {
        "type": "modal",
        "title": plain(title),
        "submit": plain("Next"),
        "close": plain("Cancel"),
        "blocks": list(blocks),
        **extra,
    }


async def refused(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


async def open_modal(fake: FakeSlack, client: AsyncWebClient, view: Json, user: str = DEVELOPER.id) -> Json:
    answer = await client.views_open(trigger_id=fake.workspace.issue_trigger(user), view=view)
    return dict(answer["view"])


# Authentication and the method catalogue


async def test_calls_without_a_valid_bot_token_are_refused(fake_slack: FakeSlack) -> None:
    anonymous = AsyncWebClient(base_url=fake_slack.api_url)
    assert (await refused(anonymous.auth_test())).response["error"] == "not_authed"
    stranger = AsyncWebClient(token="xoxb-not-this-workspace", base_url=fake_slack.api_url)
    assert (await refused(stranger.auth_test())).response["error"] == "invalid_auth"


async def test_auth_test_names_the_bot(slack_client: AsyncWebClient, fake_slack: FakeSlack) -> None:
    answer = await slack_client.auth_test()
    assert (answer["team_id"], answer["user_id"], answer["bot_id"]) == (
        fake_slack.workspace.team_id,
        fake_slack.workspace.bot_user_id,
        fake_slack.workspace.bot_id,
    )


async def test_a_method_the_fake_lacks_fails_loudly(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    error = await refused(slack_client.reactions_add(channel="C1", timestamp="1.1", name="tada"))
    assert error.response["error"] == "method_not_supported"
    assert fake_slack.unsupported_calls == ["reactions.add: the fake Slack does not implement reactions.add"]
    fake_slack.unsupported_calls.clear()  # seen here on purpose; the fixture fails any test that leaves one


async def test_users_info_answers_from_the_directory(slack_client: AsyncWebClient) -> None:
    admin = (await slack_client.users_info(user=ADMIN.id))["user"]
    developer = (await slack_client.users_info(user=DEVELOPER.id))["user"]
    assert (admin["is_admin"], admin["tz"], admin["real_name"]) == (True, "America/New_York", "Adam Admin")
    assert developer["is_admin"] is False
    assert (await refused(slack_client.users_info(user="U0NOBODY"))).response["error"] == "user_not_found"


# Messages


async def test_a_message_to_a_user_lands_in_the_dm_and_is_updated_by_its_channel_id(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    posted = await slack_client.chat_postMessage(channel=DEVELOPER.id, text="Publishing...")
    opened = await slack_client.conversations_open(users=DEVELOPER.id)
    assert posted["channel"].startswith("D") and posted["channel"] == opened["channel"]["id"]

    by_user = await refused(slack_client.chat_update(channel=DEVELOPER.id, ts=posted["ts"], text="Done"))
    assert by_user.response["error"] == "channel_not_found"
    unknown = await refused(slack_client.chat_update(channel=posted["channel"], ts="1.000001", text="Done"))
    assert unknown.response["error"] == "message_not_found"

    await slack_client.chat_update(channel=posted["channel"], ts=posted["ts"], text="Published 1.0.0")
    [message] = fake_slack.messages_for(DEVELOPER.id)
    assert message.text == "Published 1.0.0"
    assert [version["text"] for version in message.versions] == ["Publishing...", "Published 1.0.0"]
    assert fake_slack.messages_for(ADMIN.id) == []


async def test_an_update_without_blocks_keeps_the_old_blocks(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    posted = await slack_client.chat_postMessage(
        channel=DEVELOPER.id, text="Publishing", blocks=[section("*Publishing...*")]
    )
    await slack_client.chat_update(channel=posted["channel"], ts=posted["ts"], text="Published")
    [message] = fake_slack.messages_for(DEVELOPER.id)
    assert message.blocks is not None and message.blocks[0]["text"]["text"] == "*Publishing...*"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ({}, "no_text"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"text": "many", "blocks": [section(f"{n}") for n in range(51)]}, "invalid_blocks"),
        (
            {"text": "a view element", "blocks": [section("x", accessory={"type": "file_input"})]},
            "invalid_blocks",
        ),
    ],
    ids=["nothing", "text-over-40000", "51-blocks", "file-input-outside-input"],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_messages_slack_refuses(slack_client: AsyncWebClient, content: Json, error: str) -> None:
    assert (await refused(slack_client.chat_postMessage(channel=DEVELOPER.id, **content))).response[
        "error"
    ] == error


async def test_messages_at_the_limits_are_posted(slack_client: AsyncWebClient) -> None:
    await slack_client.chat_postMessage(channel=DEVELOPER.id, text="x" * 40_000)
    await slack_client.chat_postMessage(
        channel=DEVELOPER.id, text="many", blocks=[section(f"{n}") for n in range(50)]
    )


async def test_channels_need_the_bot_as_a_member(slack_client: AsyncWebClient, fake_slack: FakeSlack) -> None:
    joined = fake_slack.workspace.add_channel("integrations")
    outside = fake_slack.workspace.add_channel("random", bot_is_member=False)
    await slack_client.chat_postMessage(channel=joined, text="Published sales 1.0.0")
    not_member = await refused(slack_client.chat_postMessage(channel=outside, text="x"))
    unknown = await refused(slack_client.chat_postMessage(channel="C0NOWHERE", text="x"))
    assert (not_member.response["error"], unknown.response["error"]) == (
        "not_in_channel",
        "channel_not_found",
    )
    assert [m.text for m in fake_slack.workspace.messages_in(joined)] == ["Published sales 1.0.0"]


async def test_ephemeral_messages_reach_only_members(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    dm = fake_slack.workspace.dm_channel(DEVELOPER.id)
    await slack_client.chat_postEphemeral(channel=dm, user=DEVELOPER.id, text="Only you can see this")
    assert [m.text for m in fake_slack.ephemerals_for(DEVELOPER.id)] == ["Only you can see this"]
    outsider = await refused(slack_client.chat_postEphemeral(channel=dm, user=ADMIN.id, text="no"))
    assert outsider.response["error"] == "user_not_in_channel"


# Modals: triggers


async def test_a_trigger_opens_one_view_within_three_seconds(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    view = modal(section("Loading..."))
    trigger = fake_slack.workspace.issue_trigger(DEVELOPER.id)
    await slack_client.views_open(trigger_id=trigger, view=view)
    reused = await refused(slack_client.views_open(trigger_id=trigger, view=view))
    expired = fake_slack.workspace.issue_trigger(DEVELOPER.id, age=3.1)
    late = await refused(slack_client.views_open(trigger_id=expired, view=view))
    made_up = await refused(slack_client.views_open(trigger_id="1234.5678", view=view))
    assert [reused.response["error"], late.response["error"], made_up.response["error"]] == [
        "exchanged_trigger_id",
        "expired_trigger_id",
        "invalid_trigger_id",
    ]


# Modals: Block Kit limits. Each case: a view Slack accepts, and the smallest change it refuses.


def _options(count: int) -> list[Json]:
    return [option(f"v{n}") for n in range(count)]


def _grouped(count: int) -> Json:
    groups = [{"label": plain(f"g{n}"), "options": [option(f"g{n}")]} for n in range(count)]
    return {
        "type": "input",
        "block_id": "s",
        "label": plain("s"),
        "element": {"type": "static_select", "action_id": "choice", "option_groups": groups},
    }


def _choices(kind: str, count: int) -> Json:
    return {
        "type": "input",
        "block_id": kind,
        "label": plain(kind),
        "element": {"type": kind, "action_id": "pick", "options": _options(count)},
    }


def _external(min_query_length: int) -> Json:
    return {
        "type": "input",
        "block_id": "objects",
        "label": plain("Objects"),
        "element": {
            "type": "multi_external_select",
            "action_id": "objects",
            "min_query_length": min_query_length,
        },
    }


def _file_input(block: str) -> Json:
    element = {"type": "file_input", "action_id": "edmx"}
    if block == "input":
        return {"type": "input", "block_id": "edmx", "label": plain("EDMX"), "element": element}
    return {"type": "actions", "elements": [element]}


LIMIT_CASES: list[tuple[str, Json, Json, str]] = [
    ("title", modal(section("x"), title="x" * 24), modal(section("x"), title="x" * 25), "/view/title/text"),
    (
        "submit",
        modal(text_input("a"), submit=plain("x" * 24)),
        modal(text_input("a"), submit=plain("x" * 25)),
        "/view/submit/text",
    ),
    (
        "submit-needed-by-inputs",
        modal(section("x"), submit=None),
        modal(text_input("a"), submit=None),
        "/view/submit",
    ),
    (
        "blocks",
        modal(*[section(f"{n}") for n in range(100)]),
        modal(*[section(f"{n}") for n in range(101)]),
        "/view/blocks",
    ),
    (
        "static-options",
        modal(select("s", _options(100))),
        modal(select("s", _options(101))),
        "/view/blocks/0/element/options",
    ),
    ("option-groups", modal(_grouped(100)), modal(_grouped(101)), "/view/blocks/0/element/option_groups"),
    (
        "option-text",
        modal(select("s", [option("v", "t" * 75)])),
        modal(select("s", [option("v", "t" * 76)])),
        "/view/blocks/0/element/options/0/text/text",
    ),
    (
        "option-value",
        modal(select("s", [option("v" * 150, "t")])),
        modal(select("s", [option("v" * 151, "t")])),
        "/view/blocks/0/element/options/0/value",
    ),
    (
        "checkboxes",
        modal(_choices("checkboxes", 10)),
        modal(_choices("checkboxes", 11)),
        "/view/blocks/0/element/options",
    ),
    (
        "radio-buttons",
        modal(_choices("radio_buttons", 10)),
        modal(_choices("radio_buttons", 11)),
        "/view/blocks/0/element/options",
    ),
    (
        "private-metadata",
        modal(section("x"), private_metadata="m" * 3000),
        modal(section("x"), private_metadata="m" * 3001),
        "/view/private_metadata",
    ),
    (
        "callback-id",
        modal(section("x"), callback_id="c" * 255),
        modal(section("x"), callback_id="c" * 256),
        "/view/callback_id",
    ),
    (
        "block-id-length",
        modal(section("x", block_id="b" * 255)),
        modal(section("x", block_id="b" * 256)),
        "/view/blocks/0/block_id",
    ),
    (
        "block-id-unique",
        modal(section("x", block_id="a"), section("y", block_id="b")),
        modal(section("x", block_id="a"), section("y", block_id="a")),
        "/view/blocks/1/block_id",
    ),
    (
        "action-id-unique",
        modal({"type": "actions", "elements": [button("a"), button("b")]}),
        modal({"type": "actions", "elements": [button("a"), button("a")]}),
        "/view/blocks/0/elements/1/action_id",
    ),
    (
        "initial-value",
        modal(text_input("a", initial_value="i" * 3000)),
        modal(text_input("a", initial_value="i" * 3001)),
        "/view/blocks/0/element/initial_value",
    ),
    (
        "max-length",
        modal(text_input("a", max_length=3000)),
        modal(text_input("a", max_length=3001)),
        "/view/blocks/0/element/max_length",
    ),
    (
        "input-label",
        modal(text_input("a")),
        modal({**text_input("a"), "label": None}),
        "/view/blocks/0/label",
    ),
    (
        "file-input",
        modal(_file_input("input")),
        modal(_file_input("actions")),
        "/view/blocks/0/elements/0/type",
    ),
    (
        "min-query-length",
        modal(_external(0)),
        modal(_external(-1)),
        "/view/blocks/0/element/min_query_length",
    ),
    (
        "initial-option",
        modal(select("s", _options(2), initial_option=option("v1"))),
        modal(select("s", _options(2), initial_option=option("v9"))),
        "/view/blocks/0/element/initial_option",
    ),
]


@pytest.mark.parametrize(
    ("accepted", "refused_view", "pointer"),
    [case[1:] for case in LIMIT_CASES],
    ids=[case[0] for case in LIMIT_CASES],
)
async def test_views_open_enforces_block_kit_limits(
    slack_client: AsyncWebClient, fake_slack: FakeSlack, accepted: Json, refused_view: Json, pointer: str
) -> None:
    await open_modal(fake_slack, slack_client, accepted)
    trigger = fake_slack.workspace.issue_trigger(DEVELOPER.id)
    error = await refused(slack_client.views_open(trigger_id=trigger, view=refused_view))
    assert error.response["error"] == "invalid_arguments"
    assert any(
        f"[json-pointer:{pointer}]" in message for message in error.response["response_metadata"]["messages"]
    ), error.response


async def test_a_view_over_250_kb_is_too_large(slack_client: AsyncWebClient, fake_slack: FakeSlack) -> None:
    await open_modal(fake_slack, slack_client, modal(*[section("x" * 2400) for _ in range(100)]))
    trigger = fake_slack.workspace.issue_trigger(DEVELOPER.id)
    big = modal(*[section("x" * 2600) for _ in range(100)])
    assert (await refused(slack_client.views_open(trigger_id=trigger, view=big))).response[
        "error"
    ] == "view_too_large"


async def test_views_update_chains_hashes(slack_client: AsyncWebClient, fake_slack: FakeSlack) -> None:
    opened = await open_modal(fake_slack, slack_client, modal(section("Loading..."), external_id="draft-1"))
    step1 = (
        await slack_client.views_update(
            view_id=opened["id"], hash=opened["hash"], view=modal(section("Step 1"), external_id="draft-1")
        )
    )["view"]
    assert step1["id"] == opened["id"] and step1["hash"] != opened["hash"]
    stale = await refused(
        slack_client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal(section("Step 2")))
    )
    assert stale.response["error"] == "hash_conflict"
    await slack_client.views_update(
        external_id="draft-1", view=modal(section("Step 2"), external_id="draft-1")
    )
    current = fake_slack.current_view(DEVELOPER.id)
    assert current is not None and current["blocks"][0]["text"]["text"] == "Step 2"
    gone = await refused(slack_client.views_update(view_id="V404", view=modal(section("x"))))
    assert gone.response["error"] == "not_found"


async def test_a_modal_stacks_at_most_three_views(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    await open_modal(fake_slack, slack_client, modal(section("root")))
    for step in ("second", "third"):
        await slack_client.views_push(
            trigger_id=fake_slack.workspace.issue_trigger(DEVELOPER.id), view=modal(section(step))
        )
    fourth = slack_client.views_push(
        trigger_id=fake_slack.workspace.issue_trigger(DEVELOPER.id), view=modal(section("fourth"))
    )
    assert (await refused(fourth)).response["error"] == "push_limit_reached"
    assert [view["blocks"][0]["text"]["text"] for view in fake_slack.view_stack(DEVELOPER.id)] == [
        "root",
        "second",
        "third",
    ]


async def test_typed_input_survives_an_update_only_under_the_same_ids(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    anonymous = {key: value for key, value in text_input("x").items() if key != "block_id"}
    opened = await open_modal(fake_slack, slack_client, modal(text_input("name"), anonymous))
    generated = opened["blocks"][1]["block_id"]
    typed = {"type": "plain_text_input", "value": "typed"}
    fake_slack.workspace.type_into(opened["id"], {"name": {"value": typed}, generated: {"value": typed}})
    updated = await slack_client.views_update(view_id=opened["id"], view=modal(text_input("name"), anonymous))
    assert updated["view"]["state"]["values"] == {"name": {"value": typed}}


async def test_app_home_is_published_per_user(slack_client: AsyncWebClient, fake_slack: FakeSlack) -> None:
    home = {"type": "home", "blocks": [section("My integrations")]}
    first = (await slack_client.views_publish(user_id=DEVELOPER.id, view=home))["view"]
    again = (await slack_client.views_publish(user_id=DEVELOPER.id, view=home, hash=first["hash"]))["view"]
    assert again["id"] == first["id"] and again["hash"] != first["hash"]
    stale = await refused(slack_client.views_publish(user_id=DEVELOPER.id, view=home, hash=first["hash"]))
    assert stale.response["error"] == "hash_conflict"
    modal_as_home = await refused(slack_client.views_publish(user_id=DEVELOPER.id, view=modal(section("x"))))
    assert modal_as_home.response["error"] == "invalid_arguments"
    published = fake_slack.home_view(DEVELOPER.id)
    assert published is not None and published["hash"] == again["hash"]
    assert fake_slack.home_view(ADMIN.id) is None


# Files


async def test_a_file_goes_to_the_dm_channel_from_conversations_open(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    channel = (await slack_client.conversations_open(users=DEVELOPER.id))["channel"]["id"]
    await slack_client.files_upload_v2(
        channel=channel,
        content=b"wheel bytes",
        filename="pkg.whl",
        title="Download application package",
        initial_comment="Publish failed",
    )
    [upload] = fake_slack.files.values()
    assert (upload.content, upload.title, upload.channels) == (
        b"wheel bytes",
        "Download application package",
        [channel],
    )
    [message] = fake_slack.messages_for(DEVELOPER.id)
    assert (message.text, message.files) == ("Publish failed", [upload.id])


async def test_a_file_cannot_go_to_a_user_id(slack_client: AsyncWebClient, fake_slack: FakeSlack) -> None:
    error = await refused(
        slack_client.files_upload_v2(channel=DEVELOPER.id, content=b"x", filename="pkg.whl")
    )
    assert error.response["error"] == "invalid_channel"
    unknown = await refused(
        slack_client.files_upload_v2(channel="D0NOWHERE", content=b"x", filename="pkg.whl")
    )
    assert unknown.response["error"] == "channel_not_found"
    assert fake_slack.messages_for(DEVELOPER.id) == []


async def test_completing_an_upload_needs_all_its_bytes(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    channel = fake_slack.workspace.dm_channel(DEVELOPER.id)
    never_sent = await slack_client.files_getUploadURLExternal(filename="a.txt", length=4)
    short = await slack_client.files_getUploadURLExternal(filename="b.txt", length=4)
    async with aiohttp.ClientSession() as session, session.post(short["upload_url"], data=b"ab") as answer:
        assert answer.status == 200
    for reserved in (never_sent, short):
        error = await refused(
            slack_client.files_completeUploadExternal(
                files=[{"id": reserved["file_id"], "title": "t"}], channel_id=channel
            )
        )
        assert error.response["error"] == "file_not_found"


async def test_url_private_needs_the_bot_token(slack_client: AsyncWebClient, fake_slack: FakeSlack) -> None:
    picked = fake_slack.workspace.add_user_file(DEVELOPER.id, "service.edmx", b"<edmx/>", "application/xml")
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {fake_slack.bot_token}"}
        async with session.get(picked["url_private_download"], headers=headers) as answer:
            assert await answer.read() == b"<edmx/>"
        async with session.get(picked["url_private_download"]) as answer:
            assert answer.content_type == "text/html"  # Slack's sign-in page, with status 200
    assert (await slack_client.files_info(file=picked["id"]))["file"]["name"] == "service.edmx"


# Rate limits


async def test_an_injected_429_carries_retry_after(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    posted = await slack_client.chat_postMessage(channel=DEVELOPER.id, text="Publishing")
    fake_slack.rate_limit("chat.update", times=1, retry_after=7)
    error = await refused(slack_client.chat_update(channel=posted["channel"], ts=posted["ts"], text="50%"))
    assert (error.response.status_code, error.response.headers["Retry-After"], error.response["error"]) == (
        429,
        "7",
        "ratelimited",
    )
    await slack_client.chat_update(channel=posted["channel"], ts=posted["ts"], text="50%")


async def test_slack_sdks_retry_handler_honours_the_429(fake_slack: FakeSlack) -> None:
    client = AsyncWebClient(
        token=fake_slack.bot_token,
        base_url=fake_slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    posted = await client.chat_postMessage(channel=DEVELOPER.id, text="Publishing")
    fake_slack.rate_limit("chat.update", times=1, retry_after=0)
    await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="Published")
    assert fake_slack.call_count("chat.update") == 2
    assert fake_slack.messages_for(DEVELOPER.id)[0].text == "Published"


async def test_chat_update_is_limited_to_tier_3(slack_client: AsyncWebClient) -> None:
    posted = await slack_client.chat_postMessage(channel=DEVELOPER.id, text="0%")
    for percent in range(50):
        await slack_client.chat_update(channel=posted["channel"], ts=posted["ts"], text=f"{percent}%")
    error = await refused(
        slack_client.chat_update(channel=posted["channel"], ts=posted["ts"], text="too eager")
    )
    assert error.response.status_code == 429 and int(error.response.headers["Retry-After"]) > 0


# Recording


async def test_all_text_sent_covers_every_way_out(
    slack_client: AsyncWebClient, fake_slack: FakeSlack
) -> None:
    await slack_client.chat_postMessage(channel=DEVELOPER.id, text="in a message: leak-1")
    await open_modal(fake_slack, slack_client, modal(section("x"), private_metadata="in metadata: leak-2"))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("pkg/settings.py", "PASSWORD = 'in a wheel: leak-3'")
    channel = fake_slack.workspace.dm_channel(DEVELOPER.id)
    await slack_client.files_upload_v2(channel=channel, content=archive.getvalue(), filename="pkg.whl")
    async with aiohttp.ClientSession() as session:
        url = fake_slack.response_url(DEVELOPER.id, channel)
        async with session.post(url, json={"text": "in a response_url: leak-4"}) as answer:
            assert answer.status == 200
    sent = fake_slack.all_text_sent()
    assert all(f"leak-{n}" in sent for n in range(1, 5)), sent
    assert fake_slack.bot_token not in sent
    assert [call.method for call in fake_slack.calls("chat.postMessage")] == ["chat.postMessage"]


# The driver against a small app that checks signatures the way bolt does


@dataclass
class Received:
    kind: str
    body: Any
    headers: dict[str, str]


@dataclass
class TinyApp:
    """A stand-in for the real app: verifies signatures, records requests, answers as each test says."""

    verifier: SignatureVerifier
    client: AsyncWebClient
    answer: Callable[[Received], Awaitable[web.StreamResponse]] | None = None
    received: list[Received] = field(default_factory=list)
    rejected: int = 0
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if not self.verifier.is_valid_request(raw, dict(request.headers)):
            self.rejected += 1
            return web.Response(status=401)
        if request.content_type == "application/json":
            received = Received("event", json.loads(raw), dict(request.headers))
        else:
            form = dict(await request.post())
            if "payload" in form:
                payload = json.loads(str(form["payload"]))
                received = Received(payload["type"], payload, dict(request.headers))
            else:
                received = Received("slash_command", form, dict(request.headers))
        self.received.append(received)
        return await self.answer(received) if self.answer else web.Response()

    def later(self, work: Awaitable[Any]) -> None:
        """Run after the ack, as bolt's lazy listeners do; the test polls for the effect."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def tiny_app(
    slack_client: AsyncWebClient, slack_signing_secret: str
) -> AsyncIterator[tuple[TinyApp, str]]:
    tiny = TinyApp(SignatureVerifier(slack_signing_secret), slack_client)
    application = web.Application()
    application.router.add_post("/slack/events", tiny.handle)
    runner, url = await _serve(application)
    yield tiny, url
    for task in tiny.background:
        task.cancel()
    await runner.cleanup()


@pytest.fixture
async def driver(
    tiny_app: tuple[TinyApp, str], slack_signing_secret: str, fake_slack: FakeSlack
) -> AsyncIterator[Driver]:
    async with Driver(tiny_app[1], slack_signing_secret, fake_slack) as slack:
        yield slack


def answer_json(body: Json) -> Callable[[Received], Awaitable[web.StreamResponse]]:
    async def answer(received: Received) -> web.StreamResponse:
        return web.json_response(body)

    return answer


def respond_with(body: Json) -> Callable[[Received], Awaitable[web.StreamResponse]]:
    """Answer an interaction through its response_url, as bolt's respond() does, then ack."""

    async def answer(received: Received) -> web.StreamResponse:
        async with aiohttp.ClientSession() as session:
            await session.post(received.body["response_url"], json=body)
        return web.Response()

    return answer


async def test_the_driver_signs_as_slack_does(driver: Driver, tiny_app: tuple[TinyApp, str]) -> None:
    tiny, _ = tiny_app
    response = await driver.slash_command(DEVELOPER, "new")
    assert response.status == 200 and tiny.rejected == 0
    [command] = tiny.received
    assert {key: command.body[key] for key in ("command", "text", "user_id", "team_id")} == {
        "command": "/ib",
        "text": "new",
        "user_id": DEVELOPER.id,
        "team_id": driver.workspace.team_id,
    }
    assert command.body["trigger_id"] and command.body["response_url"].startswith(driver.fake.base_url)
    assert response.latency > 0 and driver.latencies == [("slash_command", response.latency)]


@pytest.mark.parametrize(
    "delivery",
    [{"bad_signature": True}, {"unsigned": True}, {"timestamp_offset": -360.0}],
    ids=["bad-signature", "unsigned", "six-minutes-old"],
)
async def test_broken_deliveries_fail_verification(
    driver: Driver, tiny_app: tuple[TinyApp, str], delivery: Any
) -> None:
    response = await driver.slash_command(DEVELOPER, "new", **delivery)
    assert (response.status, tiny_app[0].rejected, tiny_app[0].received) == (401, 1, [])


async def test_retries_carry_slacks_headers_and_the_same_event(
    driver: Driver, tiny_app: tuple[TinyApp, str]
) -> None:
    tiny, _ = tiny_app
    first = await driver.event(ADMIN, "app_home_opened")
    await driver.resend(first, retry_num=1, retry_reason="http_timeout")
    replayed = await driver.replay(first)
    original, retry, replay = tiny.received
    assert original.body["event"]["channel"] == driver.workspace.dm_channel(ADMIN.id)
    assert retry.body["event_id"] == original.body["event_id"]
    assert (retry.headers["X-Slack-Retry-Num"], retry.headers["X-Slack-Retry-Reason"]) == (
        "1",
        "http_timeout",
    )
    assert "X-Slack-Retry-Num" not in original.headers
    assert replay.headers["X-Slack-Signature"] == original.headers["X-Slack-Signature"]
    assert replayed.status == 200


async def test_a_trigger_from_a_command_opens_a_modal_after_the_ack(
    driver: Driver, tiny_app: tuple[TinyApp, str], fake_slack: FakeSlack
) -> None:
    tiny, _ = tiny_app

    async def open_loading_view(received: Received) -> web.StreamResponse:
        tiny.later(
            tiny.client.views_open(
                trigger_id=received.body["trigger_id"],
                view=modal(section("Loading..."), callback_id="wizard"),
            )
        )
        return web.Response()

    tiny.answer = open_loading_view
    await driver.slash_command(DEVELOPER, "new")
    shown = await wait_for(lambda: fake_slack.current_view(DEVELOPER.id), what="the wizard to open")
    assert shown["callback_id"] == "wizard"


async def test_a_slash_command_reply_shows_to_the_user(driver: Driver, tiny_app: tuple[TinyApp, str]) -> None:
    tiny_app[0].answer = answer_json({"text": "Usage: /ib new | list | connections"})
    await driver.slash_command(DEVELOPER, "bogus")
    assert [m.text for m in driver.fake.ephemerals_for(DEVELOPER.id)] == [
        "Usage: /ib new | list | connections"
    ]
    tiny_app[0].answer = answer_json({"blocks": [section(f"{n}") for n in range(51)]})
    with pytest.raises(SlackContractError, match="invalid_blocks"):
        await driver.slash_command(DEVELOPER, "list")


WIZARD_STEP = modal(
    text_input("name", max_length=40),
    select("provider", [option("sap-odata"), option("salesforce")]),
    _external(0),
    {
        "type": "input",
        "block_id": "mode",
        "label": plain("Mode"),
        "optional": True,
        "element": {"type": "radio_buttons", "action_id": "pick", "options": [option("ro"), option("rw")]},
    },
    _file_input("input"),
    {**section("Back to step 1"), "block_id": "nav", "accessory": button("back", "step-1")},
    callback_id="wizard",
)


async def test_a_submission_carries_the_state_slack_builds(
    driver: Driver, tiny_app: tuple[TinyApp, str], fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    tiny, _ = tiny_app
    shown = await open_modal(fake_slack, slack_client, WIZARD_STEP)
    tiny.answer = answer_json({"options": [option("SalesOrder"), option("BusinessPartner")]})
    await driver.block_suggestion(DEVELOPER, "objects", "")
    edmx = fake_slack.workspace.add_user_file(DEVELOPER.id, "service.edmx", b"<edmx/>", "application/xml")
    tiny.answer = answer_json(
        {"response_action": "update", "view": modal(section("Step 3"), callback_id="wizard")}
    )

    await driver.view_submission(
        DEVELOPER,
        values={
            "value": "Sales",
            "choice": "salesforce",
            "objects": ["SalesOrder"],
            "edmx": [edmx],
        },
    )

    submitted = tiny.received[-1].body
    assert (submitted["type"], submitted["view"]["id"], submitted["view"]["callback_id"]) == (
        "view_submission",
        shown["id"],
        "wizard",
    )
    values = submitted["view"]["state"]["values"]
    assert values["name"]["value"] == {"type": "plain_text_input", "value": "Sales"}
    assert values["provider"]["choice"]["selected_option"]["value"] == "salesforce"
    assert values["objects"]["objects"]["selected_options"] == [option("SalesOrder")]
    assert values["mode"]["pick"] == {"type": "radio_buttons", "selected_option": None}
    assert values["edmx"]["edmx"]["files"][0]["id"] == edmx["id"]
    now = fake_slack.current_view(DEVELOPER.id)
    assert now is not None and now["id"] == shown["id"] and now["hash"] != shown["hash"]
    assert now["blocks"][0]["text"]["text"] == "Step 3"


async def test_the_user_can_only_do_what_slacks_client_allows(
    driver: Driver, tiny_app: tuple[TinyApp, str], fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    await open_modal(fake_slack, slack_client, WIZARD_STEP)
    edmx = fake_slack.workspace.add_user_file(DEVELOPER.id, "service.edmx", b"<edmx/>", "application/xml")
    complete = {"value": "Sales", "choice": "salesforce", "edmx": [edmx]}
    with pytest.raises(SlackContractError, match="offers no option"):
        await driver.view_submission(DEVELOPER, values={**complete, "objects": ["NeverOffered"]})
    with pytest.raises(SlackContractError, match=r"objects.*required"):
        await driver.view_submission(DEVELOPER, values=complete)
    with pytest.raises(SlackContractError, match="longer than its max_length"):
        await driver.view_submission(DEVELOPER, values={"value": "x" * 41})
    with pytest.raises(SlackContractError, match="no element 'nope'"):
        await driver.block_action(DEVELOPER, "nope")
    assert tiny_app[0].received == []


async def test_options_answers_are_checked_as_the_client_shows_them(
    driver: Driver, tiny_app: tuple[TinyApp, str], fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    await open_modal(
        fake_slack,
        slack_client,
        modal(
            {**_external(0), "block_id": "zero"},
            {
                "type": "input",
                "block_id": "default",
                "label": plain("Objects"),
                "element": {"type": "external_select", "action_id": "object"},
            },
        ),
    )
    tiny_app[0].answer = answer_json({"options": _options(101)})
    with pytest.raises(SlackContractError, match="no result"):
        await driver.block_suggestion(DEVELOPER, "objects", "")
    tiny_app[0].answer = answer_json({"options": [option("v" * 151)]})
    with pytest.raises(SlackContractError, match="no result"):
        await driver.block_suggestion(DEVELOPER, "objects", "sal")
    with pytest.raises(SlackContractError, match="min_query_length 3"):
        await driver.block_suggestion(DEVELOPER, "object", "sa")


async def test_response_actions_change_the_modal_as_slack_does(
    driver: Driver, tiny_app: tuple[TinyApp, str], fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    tiny, _ = tiny_app
    await open_modal(fake_slack, slack_client, modal(text_input("name"), section("x", block_id="info")))
    tiny.answer = answer_json({"response_action": "errors", "errors": {"name": "Already taken"}})
    response = await driver.view_submission(DEVELOPER, values={"value": "taken"})
    assert (
        response.json["errors"] == {"name": "Already taken"} and len(fake_slack.view_stack(DEVELOPER.id)) == 1
    )
    tiny.answer = answer_json({"response_action": "errors", "errors": {"info": "Not an input"}})
    with pytest.raises(SlackContractError, match="not an input block"):
        await driver.view_submission(DEVELOPER)

    tiny.answer = answer_json({"response_action": "push", "view": modal(section("details"))})
    await driver.view_submission(DEVELOPER)
    await driver.view_submission(DEVELOPER)
    assert len(fake_slack.view_stack(DEVELOPER.id)) == 3
    with pytest.raises(SlackContractError, match="push_limit_reached"):
        await driver.view_submission(DEVELOPER)

    tiny.answer = answer_json({"response_action": "update", "view": modal(section("x"), title="x" * 25)})
    with pytest.raises(SlackContractError, match="invalid_arguments"):
        await driver.view_submission(DEVELOPER)

    tiny.answer = None
    await driver.view_submission(DEVELOPER)
    assert len(fake_slack.view_stack(DEVELOPER.id)) == 2
    tiny.answer = answer_json({"response_action": "clear"})
    await driver.view_submission(DEVELOPER)
    assert fake_slack.view_stack(DEVELOPER.id) == []


async def test_view_closed_reaches_the_app_only_when_asked(
    driver: Driver, tiny_app: tuple[TinyApp, str], fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    await open_modal(fake_slack, slack_client, modal(section("quiet")))
    assert await driver.view_closed(DEVELOPER) is None
    await open_modal(fake_slack, slack_client, modal(section("tell me"), notify_on_close=True))
    response = await driver.view_closed(DEVELOPER)
    assert (
        response is not None
        and tiny_app[0].received[-1].body["view"]["blocks"][0]["text"]["text"] == "tell me"
    )
    assert fake_slack.current_view(DEVELOPER.id) is None


async def test_a_button_in_a_dm_and_its_response_url(
    driver: Driver, tiny_app: tuple[TinyApp, str], fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    tiny, _ = tiny_app
    await slack_client.chat_postMessage(
        channel=ADMIN.id,
        text="Dana asks for a connection",
        blocks=[section("Dana asks", accessory=button("provide", "req-7"))],
    )
    tiny.answer = respond_with({"replace_original": True, "text": "Handled"})
    await driver.block_action(ADMIN, "provide")
    action = tiny.received[-1].body
    assert (action["type"], action["user"]["id"], action["actions"][0]["value"]) == (
        "block_actions",
        ADMIN.id,
        "req-7",
    )
    assert action["container"]["type"] == "message" and action["trigger_id"]
    [message] = fake_slack.messages_for(ADMIN.id)
    assert message.text == "Handled" and len(message.versions) == 2
    with pytest.raises(SlackContractError, match="sees no element"):
        await driver.block_action(BYSTANDER, "provide")
    await driver.block_action(BYSTANDER, "provide", message=message)  # forged: a test may send it anyway
    assert tiny.received[-1].body["user"]["id"] == BYSTANDER.id


async def test_a_button_in_a_command_reply_is_replaced_through_its_response_url(
    driver: Driver, tiny_app: tuple[TinyApp, str], fake_slack: FakeSlack
) -> None:
    tiny, _ = tiny_app
    listing = {"text": "Your integrations", "blocks": [section("sales", accessory=button("deploy", "sales"))]}
    tiny.answer = answer_json(listing)
    await driver.slash_command(DEVELOPER, "list")
    tiny.answer = respond_with({"replace_original": True, "text": "Deploying sales..."})
    await driver.block_action(DEVELOPER, "deploy")
    action = tiny.received[-1].body
    assert action["container"]["is_ephemeral"] is True and "message" not in action
    [reply] = fake_slack.ephemerals_for(DEVELOPER.id)
    assert [version["text"] for version in reply.versions] == ["Your integrations", "Deploying sales..."]
    assert fake_slack.messages_for(DEVELOPER.id) == []


async def test_a_response_url_works_five_times(fake_slack: FakeSlack) -> None:
    url = fake_slack.response_url(DEVELOPER.id, fake_slack.workspace.dm_channel(DEVELOPER.id))
    statuses = []
    async with aiohttp.ClientSession() as session:
        for attempt in range(6):
            async with session.post(url, json={"text": f"attempt {attempt}"}) as answer:
                statuses.append(answer.status)
    assert statuses == [200] * 5 + [404]
    assert len(fake_slack.ephemerals_for(DEVELOPER.id)) == 5


async def test_a_slow_ack_is_recorded_as_a_failure(
    tiny_app: tuple[TinyApp, str], slack_signing_secret: str, fake_slack: FakeSlack
) -> None:
    async def slow(received: Received) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return web.Response()

    tiny_app[0].answer = slow
    slack = Driver(tiny_app[1], slack_signing_secret, fake_slack, ack_limit=0.2)
    response = await slack.shortcut(DEVELOPER, "create_integration")
    await slack.close()
    assert response.timed_out and slack.failures == ["shortcut: no ack within 0.2 s"]
    with pytest.raises(SlackContractError):
        slack.check()


# The driver against a real bolt app: the payloads are the ones bolt parses and matches


async def test_a_bolt_app_runs_a_wizard_through_the_driver(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, slack_signing_secret: str
) -> None:
    bolt = AsyncApp(token=fake_slack.bot_token, signing_secret=slack_signing_secret, client=slack_client)
    seen: list[str] = []

    @bolt.command("/ib")
    async def command(ack: AsyncAck, body: Json, client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=modal(_external(0), callback_id="wizard"))

    @bolt.options("objects")
    async def objects(ack: AsyncAck, body: Json) -> None:
        await ack(options=[option(f"{body['value']}Order")])

    @bolt.view("wizard")
    async def submitted(ack: AsyncAck, view: Json) -> None:
        picked = view["state"]["values"]["objects"]["objects"]["selected_options"]
        seen.extend(chosen["value"] for chosen in picked)
        await ack(response_action="update", view=modal(section("Published"), callback_id="done"))

    @bolt.shortcut("create_integration")
    async def shortcut(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        seen.append("shortcut")

    runner, url = await _serve(bolt.web_app())
    try:
        async with Driver(url, slack_signing_secret, fake_slack) as slack:
            await slack.slash_command(DEVELOPER, "new")
            await wait_for(lambda: fake_slack.current_view(DEVELOPER.id), what="bolt to open the wizard")
            suggestion = await slack.block_suggestion(DEVELOPER, "objects", "Sales")
            assert suggestion.json == {"options": [option("SalesOrder")]}
            await slack.view_submission(DEVELOPER, values={"objects": ["SalesOrder"]})
            await slack.shortcut(DEVELOPER, "create_integration")
            rejected = await slack.slash_command(DEVELOPER, "new", timestamp_offset=-360.0)
    finally:
        await runner.cleanup()
    assert seen == ["SalesOrder", "shortcut"]
    current = fake_slack.current_view(DEVELOPER.id)
    assert current is not None and current["callback_id"] == "done"
    assert rejected.status == 401
    assert fake_slack.call_count("auth.test") >= 1
