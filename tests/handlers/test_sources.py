"""Downloading a file the user shared from Slack (the fake serves it as Slack does)."""

from __future__ import annotations

import pytest

from handlers.sources import download_slack_file
from providers.base import SourceError
from tests.slack import DEVELOPER, FakeSlack


async def test_the_bot_token_downloads_the_file(fake_slack: FakeSlack) -> None:
    shared = fake_slack.workspace.add_user_file(DEVELOPER.id, "m.xml", b"<edmx/>" * 10, "application/xml")
    data = await download_slack_file(
        shared["url_private_download"], fake_slack.bot_token, max_bytes=1000, name="m.xml"
    )
    assert data == b"<edmx/>" * 10


async def test_a_token_that_may_not_read_files_gets_slacks_sign_in_page_and_a_clear_line(
    fake_slack: FakeSlack,
) -> None:
    shared = fake_slack.workspace.add_user_file(DEVELOPER.id, "m.xml", b"<edmx/>", "application/xml")
    with pytest.raises(SourceError, match=r"the app may not read m\.xml: is the files:read scope granted\?"):
        await download_slack_file(shared["url_private_download"], "xoxb-other", max_bytes=1000, name="m.xml")


async def test_a_file_over_the_cap_stops_downloading(fake_slack: FakeSlack) -> None:
    shared = fake_slack.workspace.add_user_file(DEVELOPER.id, "big.xml", b"x" * 3 * 1024 * 1024, "text/xml")
    with pytest.raises(SourceError, match=r"big\.xml is larger than 2 MB"):
        await download_slack_file(
            shared["url_private_download"], fake_slack.bot_token, max_bytes=2 * 1024 * 1024, name="big.xml"
        )


async def test_a_file_slack_no_longer_has_says_so(fake_slack: FakeSlack) -> None:
    url = f"{fake_slack.base_url}/files-pri/{fake_slack.workspace.team_id}-F999/gone.xml?download=1"
    with pytest.raises(SourceError, match=r"Slack answered 404 when downloading gone\.xml"):
        await download_slack_file(url, fake_slack.bot_token, max_bytes=1000, name="gone.xml")
