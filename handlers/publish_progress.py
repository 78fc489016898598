"""The publish DM: :class:`SlackNotifier` (the publisher's notifier once Slack is connected), the
package upload to a DM, and the "How to use" button.

Everything here runs in the publisher's job task or in background tasks, never before an ack.

One message per job, edited in place. Its channel (the ``D…`` id ``chat.postMessage`` answers) and
ts are stored in the job row, so a process that resumes the job after a restart edits the same
message. ``chat.update`` is Tier 3 (50+ a minute per workspace): each message is edited at most
once per ``min_edit_interval``, states that arrive meanwhile are coalesced into the newest, and
when the workspace's recent edits reach ``progress_edits_per_minute`` progress edits are skipped
so the final ones get through. A 429 is waited out (Retry-After) and the newest content sent
again; the final message is never skipped: when Slack keeps refusing it, :meth:`finished` raises
:class:`~generator.publisher.NotifyLater` with Slack's Retry-After and the publisher tries it again
in the background (any other failure: at the next start).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import time
import zipfile
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import update

from generator.publisher import NotifyLater, install_command
from handlers.services import Services
from handlers.units import UnitsOfWork
from handlers.views.integrations import Message, notice_modal
from handlers.views.publish import (
    HOW_TO_USE_ACTION,
    HOW_TO_USE_CALLBACK,
    HOW_TO_USE_TITLE,
    failed_message,
    how_to_use_view,
    package_files_comment,
    progress_message,
    published_message,
    usage_snippet,
)
from storage import Integrations
from storage.models import IntegrationVersion, PublishJob

log = logging.getLogger(__name__)

BotToken = Callable[[str], Awaitable[str | None]]
"""The bot token of a workspace (team id), None when the app is not installed there."""

MIN_EDIT_INTERVAL_S: Final = 1.0
# Of Tier 3's 50+ chat.update calls a minute per workspace, what progress may use; finals may use all.
PROGRESS_EDITS_PER_MINUTE: Final = 30
# 429s in a row on one message before a progress edit is dropped or a final one handed back to the
# publisher (which tries it again later, so this process's senders are not tied up meanwhile).
MAX_RATE_LIMITED: Final = 8
_GONE: Final = frozenset({"message_not_found", "channel_not_found", "cant_update_message", "is_archived"})


def retry_after(error: SlackApiError) -> float | None:
    """Seconds Slack asked to wait, when ``error`` is a 429; else None."""
    response = error.response
    if getattr(response, "status_code", 200) != 429:
        return None
    headers: Mapping[str, Any] = getattr(response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            first = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(0.0, float(first))
            except ValueError:
                break
    return 1.0


async def upload_to_dm(
    client: AsyncWebClient,
    user_id: str,
    files: Sequence[tuple[str, bytes]],
    comment: str,
    *,
    token: str | None = None,
) -> str:
    """Post ``files`` ((filename, bytes)) to the app's DM with ``user_id`` in one message.

    Uploads need a conversation id, not a user id: the DM is opened first (``conversations.open``),
    then slack_sdk's three steps (getUploadURLExternal, POST, completeUploadExternal). Returns the
    DM's channel id.
    """
    opened = await client.conversations_open(users=user_id, token=token)
    channel = str(opened["channel"]["id"])
    await client.files_upload_v2(
        channel=channel,
        initial_comment=comment,
        file_uploads=[{"content": data, "filename": name, "title": name} for name, data in files],
        token=token,
    )
    return channel


def readme_of(wheel: bytes, module: str) -> str:
    """The README.md a generated wheel carries in its package."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        try:
            return archive.read(f"{module}/README.md").decode("utf-8")
        except KeyError:
            return ""


async def wheel_of(units: UnitsOfWork, version: IntegrationVersion) -> bytes:
    async with units.reading() as session:
        return await Integrations(session).artifact(version, version.wheel_filename)


@dataclass(slots=True)
class _Dm:
    """The progress message of one job in this process."""

    team_id: str
    user_id: str
    channel: str | None
    ts: str | None
    wanted: Message | None = None  # the newest content not sent yet
    final: bool = False  # ``wanted`` is the final content
    not_before: float = -math.inf  # monotonic time of the next call allowed for this message
    sender: asyncio.Task[None] | None = None
    limited: int = 0  # 429s in a row


class SlackNotifier:
    """The publisher's notifier: the requester's DM, edited in place (see the module docstring)."""

    def __init__(
        self,
        client: AsyncWebClient,
        units: UnitsOfWork,
        *,
        base_url: str,
        bot_token: BotToken,
        min_edit_interval: float = MIN_EDIT_INTERVAL_S,
        progress_edits_per_minute: int = PROGRESS_EDITS_PER_MINUTE,
        max_rate_limited: int = MAX_RATE_LIMITED,
    ) -> None:
        self.client = client
        self.units = units
        self.base_url = base_url
        self._bot_token = bot_token
        self.min_edit_interval = min_edit_interval
        self.progress_edits_per_minute = progress_edits_per_minute
        self.max_rate_limited = max_rate_limited
        self._dms: dict[str, _Dm] = {}
        self._edits: dict[str, deque[float]] = {}  # team id -> monotonic times of recent chat.update

    # The PublishNotifier protocol

    async def progress(self, job: PublishJob, state: str) -> None:
        """Set the DM's content and return: the edit is sent in the background, paced."""
        dm = self._dm(job)
        dm.wanted = progress_message(
            application_name=_application_name(job),
            module=_module(job),
            environment=job.environment,
            state=state,
        )
        if dm.sender is None or dm.sender.done():
            # The task is kept in ``dm`` (held by self._dms) until the job is finished.
            dm.sender = asyncio.create_task(self._deliver(job.id, dm), name=f"publish-dm-{job.id}")

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        dm = self._dm(job)
        try:
            if version is not None:
                final = await self._published(job, version)
            else:
                final = failed_message(
                    application_name=_application_name(job),
                    module=_module(job),
                    environment=job.environment,
                    reason=error or "publishing failed",
                    attached=bool(artifacts),
                )
            dm.wanted, dm.final = final, True
            if dm.sender is not None and not dm.sender.done():
                await dm.sender  # it sends the newest content, the final one included
            else:
                await self._deliver(job.id, dm)
            if artifacts:
                token = await self._bot_token(dm.team_id)
                await upload_to_dm(
                    self.client,
                    dm.user_id,
                    artifacts,
                    package_files_comment(_module(job), job.version),
                    token=token,
                )
        except SlackApiError as error:
            limited_for = retry_after(error)
            if limited_for is None:
                raise
            raise NotifyLater("Slack's rate limits", limited_for) from error
        finally:
            self._dms.pop(job.id, None)

    # Sending

    def _dm(self, job: PublishJob) -> _Dm:
        dm = self._dms.get(job.id)
        if dm is None:
            dm = self._dms[job.id] = _Dm(job.team_id, job.requested_by, job.slack_channel, job.slack_ts)
        return dm

    async def _published(self, job: PublishJob, version: IntegrationVersion) -> Message:
        module = version.integration.module_name
        try:
            snippet = usage_snippet(readme_of(await wheel_of(self.units, version), module))
        except (zipfile.BadZipFile, LookupError):
            log.warning("publish job %s: no README in the wheel of %s %s", job.id, module, version.version)
            snippet = ""
        return published_message(
            application_name=version.integration.application_name,
            module=module,
            version=version.version,
            environment=job.environment,
            install_line=install_command(self.base_url, job.environment, module),
            manager_url=self.base_url,
            snippet=snippet,
        )

    async def _deliver(self, job_id: str, dm: _Dm) -> None:
        """Send the newest content until none is left; raise if the final content cannot be sent."""
        while dm.wanted is not None:
            wait = dm.not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            message, final = dm.wanted, dm.final
            dm.wanted = None
            if dm.ts is not None and not final and not self._progress_allowed(dm.team_id):
                continue  # the workspace edits a lot right now: the final edit will do
            try:
                await self._send(job_id, dm, message)
            except Exception as error:
                limited_for = retry_after(error) if isinstance(error, SlackApiError) else None
                if limited_for is not None and dm.limited < self.max_rate_limited:
                    dm.limited += 1
                    dm.wanted = dm.wanted or message  # resend unless something newer came meanwhile
                    dm.final = dm.final or final
                    dm.not_before = time.monotonic() + limited_for
                    continue
                if final:
                    raise
                # A lost progress edit costs nothing: the next state (or the final one) replaces it.
                log.warning("publish job %s: progress message not sent: %s", job_id, _reason(error))
            else:
                dm.limited = 0
                dm.not_before = time.monotonic() + self.min_edit_interval

    def _progress_allowed(self, team_id: str) -> bool:
        recent = self._edits.setdefault(team_id, deque())
        now = time.monotonic()
        while recent and now - recent[0] >= 60:
            recent.popleft()
        return len(recent) < self.progress_edits_per_minute

    async def _send(self, job_id: str, dm: _Dm, message: Message) -> None:
        token = await self._bot_token(dm.team_id)
        if token is None:
            log.warning(
                "publish job %s: the app is not installed in workspace %s any more", job_id, dm.team_id
            )
            return
        if dm.ts is not None and dm.channel is not None:
            try:
                await self.client.chat_update(
                    channel=dm.channel, ts=dm.ts, text=message.text, blocks=message.blocks, token=token
                )
            except SlackApiError as error:
                if error.response.get("error") not in _GONE:
                    raise
                log.info("publish job %s: its message is gone; posting a new one", job_id)
            else:
                self._edits.setdefault(dm.team_id, deque()).append(time.monotonic())
                return
        posted = await self.client.chat_postMessage(
            channel=dm.user_id, text=message.text, blocks=message.blocks, token=token
        )
        dm.channel, dm.ts = str(posted["channel"]), str(posted["ts"])
        async with self.units.writing() as session:
            await session.execute(
                update(PublishJob)
                .where(PublishJob.id == job_id)
                .values(slack_channel=dm.channel, slack_ts=dm.ts)
                .execution_options(synchronize_session=False)
            )


def _reason(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return str(error.response.get("error"))
    return error.__class__.__name__


def _module(job: PublishJob) -> str:
    return str(job.spec.get("module_name", ""))


def _application_name(job: PublishJob) -> str:
    return str(job.spec.get("application_name") or _module(job))


# How to use


async def show_how_to_use(
    services: Services, client: AsyncWebClient, context: AsyncBoltContext, trigger_id: str, value: str
) -> None:
    """Open a modal at once (a trigger lives 3 s), then fill it with the package's README."""
    try:
        opened = await client.views_open(
            trigger_id=trigger_id,
            view=notice_modal(HOW_TO_USE_TITLE, "Loading…", callback_id=HOW_TO_USE_CALLBACK),
        )
    except SlackApiError as error:
        log.info("How to use not opened: %s", error.response.get("error"))
        return
    view = await _how_to_use(services, str(context.team_id), value)
    await client.views_update(view_id=opened["view"]["id"], hash=opened["view"]["hash"], view=view)


async def _how_to_use(services: Services, team_id: str, value: str) -> dict[str, Any]:
    try:
        wanted = json.loads(value)
        module, version_name = str(wanted["module"]), str(wanted["version"])
    except (ValueError, KeyError, TypeError):
        return notice_modal(HOW_TO_USE_TITLE, "This button is broken.", callback_id=HOW_TO_USE_CALLBACK)
    async with services.units.reading() as session:
        integrations = Integrations(session)
        integration = await integrations.by_module(team_id, module)
        version = await integrations.get_version(integration, version_name) if integration else None
        wheel = await integrations.artifact(version, version.wheel_filename) if version else None
    if version is None or wheel is None:
        gone = f"`{module}` {version_name} does not exist in this workspace any more."
        return notice_modal(HOW_TO_USE_TITLE, gone, callback_id=HOW_TO_USE_CALLBACK)
    return how_to_use_view(
        module=module,
        version=version_name,
        install_line=install_command(services.publisher.base_url, services.environment, module),
        readme=readme_of(wheel, module),
    )


def register(app: AsyncApp, services: Services) -> None:
    @app.action(HOW_TO_USE_ACTION)
    async def how_to_use(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        services.tasks.spawn(
            show_how_to_use(
                services, client, context, str(body.get("trigger_id", "")), str(action.get("value", ""))
            ),
            name="publish-how-to-use",
        )
