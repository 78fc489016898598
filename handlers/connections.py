"""`/ib connections`, the "connections_open" buttons, and admin requests: the Slack side of
:class:`~handlers.connections_service.ConnectionService`.

Every listener acks at once; reading, testing (seconds: a real request to the external system)
and Slack calls run afterwards in ``services.tasks``. A modal opens with a Loading view and is
then updated in place (``views.update`` with the shown view's hash, so a view the user has moved
on from is left alone). Validation that needs no network (names, taken names, who may submit)
answers in the ack with ``response_action: errors``; the connection test answers in the view.

Secrets: typed values are read from the submission, handed to the service and dropped. They are
never put back into a view (no ``initial_value``), into ``private_metadata``, a message or a log
line; while a test runs the ack shows the submitted view itself with a status line, so Slack's
client keeps what was typed and a failed test leaves the form filled for another try.

Submissions change things once: a Slack retry or a double click carries the same view id and
hash, claimed in the database (:class:`~storage.DedupKeys`) before anything is done.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.connections_service import (
    CONNECTION_NAME,
    AdminRequestSummary,
    AssociationSummary,
    ConnectionService,
    ConnectionServiceError,
)
from handlers.publish_progress import BotToken
from handlers.services import CommandRequest, Services
from handlers.tasks import after_ack
from handlers.views.connections import (
    ADMIN_BLOCK,
    ADMIN_OPEN_ACTION,
    ADMIN_TITLE,
    ASK_ACTION,
    BACK_ACTION,
    CALLBACK_ID,
    CANCEL_REQUEST_ACTION,
    CONNECTION_BLOCK,
    DELETE_ACTION,
    EDIT_ACTION,
    ENV_ACTION,
    NAME_BLOCK,
    NEW_ACTION,
    NOTE_BLOCK,
    OPEN_ACTION,
    PICK_ACTION,
    RETEST_ACTION,
    TEST_ACTION,
    IntegrationScreen,
    ModalContext,
    Status,
    admin_form_view,
    admin_request_cancelled_message,
    admin_request_done_message,
    admin_request_message,
    ask_view,
    connection_options,
    connection_ready_message,
    field_block_id,
    form_view,
    integration_view,
    kind_of,
    loading_view,
    notice_view,
    parse_target,
    picker_view,
    requester_cancelled_message,
    requester_expired_message,
    requester_message,
    with_status,
)
from providers.base import ConnectionField, ProviderError, get_provider
from storage import AdminRequests, Connections, DedupKeys, Environments, Integrations
from storage.models import Environment

log = logging.getLogger(__name__)

ARGUMENTS = "[<integration> [<env>]]"
SUMMARY = (
    "an integration's connection per environment (optionally `<integration> <env>`): new, test, edit, "
    "delete, associate"
)
UNAVAILABLE = (
    "Connections are not available here: this Integration Builder has no secret keys "
    "(IB_SECRET_KEYS) to store credentials with. Ask whoever runs it."
)
NAME_RULE = "1 to 64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit."
# Slack answers these when the user closed the modal or it changed meanwhile: nothing is lost.
_GONE_VIEW = ("not_found", "hash_conflict")
# Where an ephemeral message cannot reach the user (a button in someone else's DM).
_NOT_THERE = ("user_not_in_channel", "channel_not_found", "not_in_channel")

State = Mapping[str, Mapping[str, Mapping[str, Any]]]


def sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


def provider_title(key: str) -> str:
    try:
        return get_provider(key).title
    except ProviderError:
        return key


def _state(view: Mapping[str, Any]) -> State:
    values: State = view.get("state", {}).get("values", {})
    return values


def _entry(state: State, block_id: str, action_id: str) -> Mapping[str, Any]:
    return state.get(block_id, {}).get(action_id) or {}


def _text(state: State, block_id: str, action_id: str) -> str:
    return str(_entry(state, block_id, action_id).get("value") or "")


def _selected(state: State, block_id: str, action_id: str) -> str:
    chosen = _entry(state, block_id, action_id).get("selected_option") or {}
    return str(chosen.get("value") or "")


def typed_values(fields: Sequence[ConnectionField], state: State) -> dict[str, str]:
    """Every field's value as submitted (secrets included: hand them on, never keep them)."""
    values = {}
    for connection_field in fields:
        block_id = field_block_id(connection_field.name)
        if connection_field.kind == "choice":
            values[connection_field.name] = _selected(state, block_id, connection_field.name)
        else:
            values[connection_field.name] = _text(state, block_id, connection_field.name)
    return values


def shown_values(fields: Sequence[ConnectionField], values: Mapping[str, str]) -> dict[str, str]:
    """The values a view may show again: the non-secret ones."""
    secret = {connection_field.name for connection_field in fields if connection_field.secret}
    return {name: value for name, value in values.items() if name not in secret}


def name_problem(name: str) -> str | None:
    if not CONNECTION_NAME.match(name.strip()):
        return f"A connection name is {NAME_RULE}"
    return None


class ConnectionsModal:
    """The behaviour behind the listeners; :func:`register` wires it to bolt."""

    def __init__(self, services: Services, service: ConnectionService) -> None:
        self.services = services
        self.service = service

    # Opening

    async def open(
        self,
        client: AsyncWebClient,
        *,
        user_id: str,
        team_id: str,
        trigger_id: str,
        module: str = "",
        environment: str = "",
    ) -> None:
        try:
            opened = await client.views_open(trigger_id=trigger_id, view=loading_view())
        except SlackApiError as error:
            log.warning("connections modal not opened: %s", error.response.get("error"))
            return
        shown = opened["view"]
        view = await self.screen(user_id, team_id, ModalContext(module=module, environment=environment))
        await self._update(client, shown["id"], view, view_hash=shown["hash"])

    async def screen(
        self, user_id: str, team_id: str, ctx: ModalContext, status: Status | None = None
    ) -> dict[str, Any]:
        """The main view of ``ctx.module`` in ``ctx.environment`` (the development environment, or
        its only one, when not given); the picker when no integration is named."""
        if not ctx.module:
            return picker_view(await self._choices(team_id))
        try:
            deployments = await self.service.integration_connections(team_id, ctx.module)
        except ConnectionServiceError as error:
            return notice_view(sentence(str(error)), ok=False)
        if not deployments:
            return notice_view(f"`{ctx.module}` is not deployed to any environment yet.", ok=False)
        by_environment = {deployment.environment: deployment for deployment in deployments}
        environment = ctx.environment or (
            self.services.environment
            if self.services.environment in by_environment
            else deployments[0].environment
        )
        association = by_environment.get(environment)
        if association is None:
            return notice_view(
                f"`{ctx.module}` is not deployed to *{environment}*: deploy it first "
                f"(`/ib deploy {ctx.module} {environment}`).",
                ok=False,
            )
        try:
            connections = await self.service.list_connections(environment, provider=association.provider)
            can_manage = await self.service.can_manage(user_id, environment)
        except ConnectionServiceError as error:
            return notice_view(sentence(str(error)), ok=False)
        screen = IntegrationScreen(
            association=association,
            provider_title=provider_title(association.provider),
            environments=tuple(by_environment),
            connections=tuple(connections),
            can_manage=can_manage,
        )
        return integration_view(screen, status)

    async def _choices(self, team_id: str) -> list[AssociationSummary]:
        async with self.services.units.reading() as session:
            integrations = await Integrations(session).in_team(team_id)
        choices: list[AssociationSummary] = []
        for integration in integrations:
            choices += await self.service.integration_connections(team_id, integration.module_name)
        return choices

    # Buttons and selects in the modal (after the ack)

    async def act(
        self,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        shown: Mapping[str, Any],
        action: Mapping[str, Any],
    ) -> None:
        user_id, team_id = str(context.user_id), str(context.team_id)
        ctx = ModalContext.from_json(str(shown.get("private_metadata", "")))
        action_id = str(action.get("action_id", ""))
        view_id, view_hash = str(shown["id"]), shown.get("hash")
        state = _state(shown)
        chosen = _selected(state, CONNECTION_BLOCK, CONNECTION_BLOCK)
        if action_id == PICK_ACTION or action_id == ENV_ACTION:
            picked = str((action.get("selected_option") or {}).get("value", ""))
            module, environment = parse_target(picked) if action_id == PICK_ACTION else (ctx.module, picked)
            view = await self.screen(user_id, team_id, ModalContext(module=module, environment=environment))
        elif action_id == BACK_ACTION:
            view = await self.screen(user_id, team_id, _screen_context(ctx))
        elif action_id == NEW_ACTION:
            view = self._form(ctx, name=f"{ctx.module}-{ctx.environment}")
        elif action_id == ASK_ACTION:
            view = ask_view(ctx, provider_title(ctx.provider), kept_for_days=self._kept_for_days)
        elif action_id == TEST_ACTION:
            await self._test_typed(client, user_id, ctx, shown)
            return
        elif not chosen:
            view = await self.screen(user_id, team_id, ctx, Status("Choose a connection first.", False))
        elif action_id == EDIT_ACTION:
            view = await self._edit_form(user_id, team_id, ctx, chosen)
        elif action_id == RETEST_ACTION:
            await self._retest(client, user_id, team_id, ctx, shown, chosen)
            return
        else:  # DELETE_ACTION, the last one routed here
            view = await self.screen(user_id, team_id, ctx, await self._delete(user_id, ctx, chosen))
        await self._update(client, view_id, view, view_hash=view_hash)

    @property
    def _kept_for_days(self) -> int:
        return self.service.request_lifetime.days

    def _form(
        self,
        ctx: ModalContext,
        *,
        name: str,
        values: Mapping[str, str] | None = None,
        status: Status | None = None,
    ) -> dict[str, Any]:
        try:
            fields = self.service.connection_fields(ctx.provider)
        except ConnectionServiceError as error:
            return notice_view(sentence(str(error)), ok=False)
        return form_view(
            ctx,
            fields,
            provider_title=provider_title(ctx.provider),
            values=values or {},
            name=name,
            status=status,
        )

    async def _edit_form(self, user_id: str, team_id: str, ctx: ModalContext, name: str) -> dict[str, Any]:
        try:
            connection = await self.service.get_connection(ctx.environment, name)
        except ConnectionServiceError as error:
            return await self.screen(user_id, team_id, ctx, Status(sentence(str(error)), False))
        editing = ModalContext(
            module=ctx.module,
            environment=ctx.environment,
            provider=connection.provider,
            connection=connection.name,
            secrets_set=connection.secrets_set,
        )
        return self._form(editing, name=connection.name, values=connection.values)

    async def _test_typed(
        self, client: AsyncWebClient, user_id: str, ctx: ModalContext, shown: Mapping[str, Any]
    ) -> None:
        """ "Test connection" in the form: what is typed, tested, nothing stored."""
        try:
            fields = self.service.connection_fields(ctx.provider)
        except ConnectionServiceError as error:
            await self._update(
                client, str(shown["id"]), with_status(shown, Status(sentence(str(error)), False))
            )
            return
        state = _state(shown)
        values = typed_values(fields, state)
        name = _text(state, NAME_BLOCK, NAME_BLOCK) or ctx.connection
        testing = with_status(shown, Status("Testing the connection…"))
        view_hash = await self._update(client, str(shown["id"]), testing, view_hash=shown.get("hash"))
        if view_hash is None:
            return
        try:
            test = await self.service.check_values(
                user_id,
                environment=ctx.environment,
                provider=ctx.provider,
                values=values,
                name=ctx.connection or None,
            )
            status = Status(
                f"The connection test {'passed' if test.ok else 'failed'}: {test.message}", test.ok
            )
        except ConnectionServiceError as error:
            status = Status(sentence(str(error)), False, error.field)
        view = self._form(ctx, name=name, values=shown_values(fields, values), status=status)
        await self._update(client, str(shown["id"]), view, view_hash=view_hash)

    async def _retest(
        self,
        client: AsyncWebClient,
        user_id: str,
        team_id: str,
        ctx: ModalContext,
        shown: Mapping[str, Any],
        name: str,
    ) -> None:
        testing = with_status(shown, Status(f"Testing `{name}`…"))
        view_hash = await self._update(client, str(shown["id"]), testing, view_hash=shown.get("hash"))
        if view_hash is None:
            return
        try:
            test = await self.service.test_connection(user_id, environment=ctx.environment, name=name)
            status = Status(
                f"The test of `{name}` {'passed' if test.ok else 'failed'}: {test.message}", test.ok
            )
        except ConnectionServiceError as error:
            status = Status(sentence(str(error)), False)
        await self._update(
            client, str(shown["id"]), await self.screen(user_id, team_id, ctx, status), view_hash=view_hash
        )

    async def _delete(self, user_id: str, ctx: ModalContext, name: str) -> Status:
        try:
            await self.service.delete_connection(user_id, environment=ctx.environment, name=name)
        except ConnectionServiceError as error:
            return Status(sentence(str(error)), False)
        return Status(f"Deleted the connection `{name}`.", True)

    # Submissions (the ack path: no network, answers within milliseconds)

    async def submit(
        self, ack: AsyncAck, body: Mapping[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        shown = body["view"]
        kind = kind_of(str(shown.get("callback_id", "")))
        ctx = ModalContext.from_json(str(shown.get("private_metadata", "")))
        user_id = str(context.user_id)
        if kind == "screen":
            await self._submit_association(ack, client, context, shown, ctx)
        elif kind == "form":
            await self._submit_form(ack, client, context, shown, ctx)
        elif kind == "ask":
            await self._submit_ask(ack, client, context, shown, ctx)
        elif kind == "admin":
            await self._submit_admin(ack, client, context, shown, ctx)
        else:
            log.info("user %s submitted a connections view of kind %r", user_id, kind)
            await ack(response_action="update", view=notice_view("This view is out of date. Open it again."))

    def _spawn(self, work: Any, name: str) -> None:
        self.services.tasks.spawn(work, name=name)

    async def _submit_association(
        self,
        ack: AsyncAck,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        shown: Mapping[str, Any],
        ctx: ModalContext,
    ) -> None:
        chosen = _selected(_state(shown), CONNECTION_BLOCK, CONNECTION_BLOCK)
        await ack(response_action="update", view=loading_view(f"Associating `{chosen}`…", ctx))
        self._spawn(self._associate(client, context, shown, ctx, chosen), "connections-associate")

    async def _associate(
        self,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        shown: Mapping[str, Any],
        ctx: ModalContext,
        chosen: str,
    ) -> None:
        await after_ack(context)
        if not await self._first(shown):
            return
        user_id, team_id = str(context.user_id), str(context.team_id)
        status = await self._association_status(user_id, team_id, ctx, chosen)
        await self._update(client, str(shown["id"]), await self.screen(user_id, team_id, ctx, status))

    async def _association_status(self, user_id: str, team_id: str, ctx: ModalContext, chosen: str) -> Status:
        try:
            await self.service.associate(
                user_id,
                module_name=ctx.module,
                environment=ctx.environment,
                connection_name=chosen,
                team_id=team_id,
            )
        except ConnectionServiceError as error:
            return Status(sentence(str(error)), False)
        return Status(f"`{ctx.module}` uses `{chosen}` in *{ctx.environment}* now.", True)

    async def _submit_form(
        self,
        ack: AsyncAck,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        shown: Mapping[str, Any],
        ctx: ModalContext,
    ) -> None:
        state = _state(shown)
        name = ctx.connection or _text(state, NAME_BLOCK, NAME_BLOCK).strip()
        problem = None if ctx.connection else name_problem(name) or await self._taken(ctx.environment, name)
        if await _ack_saving(ack, shown, problem):
            self._spawn(self._save(client, context, shown, ctx, name), "connections-save")

    async def _taken(self, environment: str, name: str) -> str | None:
        async with self.services.units.reading() as session:
            env = await Environments(session).get(environment)
            if env is None or await Connections(session, self.service.box).by_name(env, name) is None:
                return None
        return (
            f"{environment} has a connection named {name!r} already: choose another name, or edit that one."
        )

    async def _save(
        self,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        shown: Mapping[str, Any],
        ctx: ModalContext,
        name: str,
    ) -> None:
        await after_ack(context)
        if not await self._first(shown):
            return
        user_id, team_id = str(context.user_id), str(context.team_id)
        try:
            fields = self.service.connection_fields(ctx.provider)
        except ConnectionServiceError as error:
            await self._update(client, str(shown["id"]), notice_view(sentence(str(error)), ok=False))
            return
        values = typed_values(fields, _state(shown))
        try:
            if ctx.connection:
                saved = await self.service.edit_connection(
                    user_id, environment=ctx.environment, name=ctx.connection, values=values
                )
            else:
                saved = await self.service.create_connection(
                    user_id, environment=ctx.environment, provider=ctx.provider, name=name, values=values
                )
        except ConnectionServiceError as error:
            status = Status(sentence(str(error)), False, error.field)
            view = self._form(ctx, name=name, values=shown_values(fields, values), status=status)
            await self._update(client, str(shown["id"]), view)
            return
        done = f"Saved `{saved.connection.name}`: {sentence(saved.test.message)}"
        screen_ctx = _screen_context(ctx)
        if ctx.module and not ctx.connection:
            associated = await self._association_status(user_id, team_id, screen_ctx, saved.connection.name)
            status = Status(f"{done} {associated.text}", associated.ok)
        else:
            status = Status(done, True)
        await self._update(client, str(shown["id"]), await self.screen(user_id, team_id, screen_ctx, status))

    # Asking an administrator

    async def _submit_ask(
        self,
        ack: AsyncAck,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        shown: Mapping[str, Any],
        ctx: ModalContext,
    ) -> None:
        state = _state(shown)
        admin = str(_entry(state, ADMIN_BLOCK, ADMIN_BLOCK).get("selected_user") or "")
        note = _text(state, NOTE_BLOCK, NOTE_BLOCK)
        if admin == context.user_id:
            await ack(
                response_action="errors",
                errors={
                    ADMIN_BLOCK: "Pick the administrator of the external system, not yourself: if you have "
                    "the credentials, create the connection yourself."
                },
            )
            return
        await ack(response_action="update", view=loading_view(f"Sending your request to <@{admin}>…", ctx))
        self._spawn(self._ask(client, context, shown, ctx, admin, note), "connections-ask")

    async def _ask(
        self,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        shown: Mapping[str, Any],
        ctx: ModalContext,
        admin: str,
        note: str,
    ) -> None:
        await after_ack(context)
        if not await self._first(shown):
            return
        user_id, view_id = str(context.user_id), str(shown["id"])

        def again(problem: str) -> dict[str, Any]:
            status = Status(problem, False)
            return ask_view(
                ctx,
                provider_title(ctx.provider),
                admin=admin,
                note=note,
                kept_for_days=self._kept_for_days,
                status=status,
            )

        try:
            request = await self.service.request_admin(
                user_id,
                admin=admin,
                module_name=ctx.module,
                environment=ctx.environment,
                note=note,
                team_id=str(context.team_id),
            )
        except ConnectionServiceError as error:
            await self._update(client, view_id, again(sentence(str(error))))
            return
        problem = await self._deliver_request(client, request)
        if problem is not None:
            try:
                await self.service.cancel_admin_request(user_id, request.id)
            except ConnectionServiceError as error:
                log.warning("could not cancel undelivered admin request %s: %s", request.id, error)
            await self._update(client, view_id, again(problem))
            return
        text, blocks = requester_message(request)
        await self._post(client, user_id, text, blocks)
        await self._update(
            client,
            view_id,
            notice_view(
                f"Sent: <@{admin}> got a DM with your request. You get one when the connection is set up.",
                ok=True,
            ),
        )

    async def _deliver_request(self, client: AsyncWebClient, request: AdminRequestSummary) -> str | None:
        """The administrator's DM and its files; why it failed, or None."""
        text, blocks = admin_request_message(request)
        try:
            await client.chat_postMessage(channel=request.admin, text=text, blocks=blocks)
            if request.instructions.files:
                # File uploads need the conversation's D id, not the user id chat.postMessage takes.
                opened = await client.conversations_open(users=request.admin)
                await client.files_upload_v2(
                    channel=opened["channel"]["id"],
                    file_uploads=[
                        {"content": content, "filename": filename, "title": filename}
                        for filename, content in request.instructions.files
                    ],
                    initial_comment=(
                        f"For the connection of `{request.module_name}` in *{request.environment}*."
                    ),
                )
        except SlackApiError as error:
            code = error.response.get("error")
            log.warning("the DM of admin request %s was not delivered: %s", request.id, code)
            return (
                f"I could not send <@{request.admin}> a DM ({code}): the request was withdrawn. "
                "Pick someone else."
            )
        return None

    async def open_request(
        self, client: AsyncWebClient, user_id: str, body: Mapping[str, Any], request_id: str
    ) -> None:
        """ "Provide connection details": the form, for the addressed administrator only."""
        container = body.get("container") or {}
        channel = str(container.get("channel_id") or "")
        try:
            request = await self.service.open_admin_request(user_id, request_id)
            fields = self.service.connection_fields(request.provider)
        except ConnectionServiceError as refusal:
            await tell_privately(client, user_id, channel, sentence(str(refusal)))
            return
        ctx = ModalContext(request=request.id, channel=channel, ts=str(container.get("message_ts") or ""))
        view = admin_form_view(
            ctx, request, fields, values={}, name=f"{request.module_name}-{request.environment}"
        )
        try:
            await client.views_open(trigger_id=str(body.get("trigger_id", "")), view=view)
        except SlackApiError as error:
            code = error.response.get("error")
            log.warning("admin request form not opened: %s", code)
            await tell_privately(
                client, user_id, channel, "That took too long for Slack: press the button again."
            )

    async def _submit_admin(
        self,
        ack: AsyncAck,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        shown: Mapping[str, Any],
        ctx: ModalContext,
    ) -> None:
        user_id = str(context.user_id)
        state = _state(shown)
        name = _text(state, NAME_BLOCK, NAME_BLOCK).strip()
        async with self.services.units.reading() as session:
            row = await AdminRequests(session, self.service.box).get(ctx.request)
        if row is None:
            await ack(
                response_action="update",
                view=notice_view("This request no longer exists.", title=ADMIN_TITLE),
            )
            return
        if row.admin_user_id != user_id:
            # Checked again on every submission: a view can be forged, a button press cannot be trusted.
            log.warning("user %s submitted the connection details of someone else's admin request", user_id)
            await ack(
                response_action="errors",
                errors={
                    NAME_BLOCK: f"Only <@{row.admin_user_id}>, whom <@{row.requester_user_id}> asked, "
                    "can provide these connection details."
                },
            )
            return
        problem = name_problem(name) or await self._taken_in(row.environment_id, name)
        if await _ack_saving(ack, shown, problem):
            self._spawn(self._complete(client, context, shown, ctx, name), "connections-admin-complete")

    async def _taken_in(self, environment_id: int, name: str) -> str | None:
        async with self.services.units.reading() as session:
            env = await session.get(Environment, environment_id)
        return await self._taken(env.name, name) if env is not None else None

    async def _complete(
        self,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        shown: Mapping[str, Any],
        ctx: ModalContext,
        name: str,
    ) -> None:
        await after_ack(context)
        if not await self._first(shown):
            return
        user_id, view_id = str(context.user_id), str(shown["id"])
        try:
            request = await self.service.get_admin_request(user_id, ctx.request)
            fields = self.service.connection_fields(request.provider)
        except ConnectionServiceError as error:
            await self._update(
                client, view_id, notice_view(sentence(str(error)), ok=False, title=ADMIN_TITLE)
            )
            return
        values = typed_values(fields, _state(shown))
        try:
            completed = await self.service.complete_admin_request(
                user_id, ctx.request, name=name, values=values
            )
        except ConnectionServiceError as error:
            try:
                request = await self.service.get_admin_request(user_id, ctx.request)
            except ConnectionServiceError:
                pass  # the request went away meanwhile: its status below says so
            if request.status != "pending":
                view = notice_view(sentence(str(error)), ok=False, title=ADMIN_TITLE)
            else:
                status = Status(sentence(str(error)), False, error.field)
                view = admin_form_view(
                    ctx, request, fields, values=shown_values(fields, values), name=name, status=status
                )
            await self._update(client, view_id, view)
            return
        request = completed.request
        await self._update(
            client,
            view_id,
            notice_view(
                f"Connected: `{completed.connection.name}` passed its test, is saved, and "
                f"`{request.module_name}` uses it in *{request.environment}*. <@{request.requester}> "
                "has been told.",
                ok=True,
                title=ADMIN_TITLE,
            ),
        )
        for notified in completed.notify:
            text, blocks = connection_ready_message(completed)
            await self._post(client, notified, text, blocks)
        if ctx.channel and ctx.ts:
            text, blocks = admin_request_done_message(request, completed.connection.name)
            await self._edit_message(client, ctx.channel, ctx.ts, text, blocks)

    async def cancel_request(
        self, client: AsyncWebClient, user_id: str, body: Mapping[str, Any], request_id: str
    ) -> None:
        container = body.get("container") or {}
        channel = str(container.get("channel_id") or "")
        try:
            request = await self.service.cancel_admin_request(user_id, request_id)
        except ConnectionServiceError as refusal:
            await tell_privately(client, user_id, channel, sentence(str(refusal)))
            return
        text, blocks = requester_cancelled_message(request)
        if channel and container.get("message_ts"):
            await self._edit_message(client, channel, str(container["message_ts"]), text, blocks)
        text, blocks = admin_request_cancelled_message(request)
        await self._post(client, request.admin, text, blocks)

    # Searched connection select

    async def suggest(self, ack: AsyncAck, body: Mapping[str, Any]) -> None:
        ctx = ModalContext.from_json(str(body.get("view", {}).get("private_metadata", "")))
        try:
            connections = await self.service.list_connections(ctx.environment, provider=ctx.provider or None)
        except ConnectionServiceError:
            connections = []
        await ack(options=connection_options(connections, str(body.get("value", ""))))

    # Slack calls

    async def _first(self, shown: Mapping[str, Any]) -> bool:
        """Whether this submission of this view (id and hash) is the first seen by any process."""
        key = f"connections:{shown['id']}:{shown.get('hash', '')}"
        async with self.services.units.writing() as session:
            first = await DedupKeys(session).claim(key)
        if not first:
            log.info("a repeated submission of view %s was ignored", shown["id"])
        return first

    async def _update(
        self, client: AsyncWebClient, view_id: str, view: dict[str, Any], *, view_hash: str | None = None
    ) -> str | None:
        """Show ``view``; its new hash, or None when the user closed the modal or moved on."""
        try:
            updated = await client.views_update(view_id=view_id, view=view, hash=view_hash)
        except SlackApiError as error:
            code = error.response.get("error")
            log.log(logging.INFO if code in _GONE_VIEW else logging.WARNING, "views.update failed: %s", code)
            return None
        return str(updated["view"]["hash"])

    async def _post(
        self, client: AsyncWebClient, user_id: str, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        try:
            await client.chat_postMessage(channel=user_id, text=text, blocks=blocks)
        except SlackApiError as error:
            log.warning("a connections DM to %s failed: %s", user_id, error.response.get("error"))

    async def _edit_message(
        self, client: AsyncWebClient, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        try:
            await client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except SlackApiError as error:
            log.warning("updating a connections DM failed: %s", error.response.get("error"))


async def _ack_saving(ack: AsyncAck, shown: Mapping[str, Any], problem: str | None) -> bool:
    """Answer a connection form's submission: the name's problem under it, or the form saying it
    is being tested and saved (True: go on after the ack)."""
    if problem:
        await ack(response_action="errors", errors={NAME_BLOCK: problem})
        return False
    saving = Status("Testing the connection, then saving…")
    await ack(response_action="update", view=with_status(shown, saving))
    return True


async def tell_requesters_of_expiry(
    service: ConnectionService, client: AsyncWebClient, bot_token: BotToken
) -> int:
    """Expire overdue admin requests and DM each requester not told yet (once across replicas);
    returns how many were told. For a periodic sweep: no Slack request brings this work."""
    told = 0
    for request in await service.expired_requests_to_tell():
        token = await bot_token(request.team_id) if request.team_id else None
        if token is None:
            log.info(
                "admin request %s expired; its workspace has no bot token to tell the requester", request.id
            )
            continue
        text, blocks = requester_expired_message(request)
        try:
            await client.chat_postMessage(token=token, channel=request.requester, text=text, blocks=blocks)
        except SlackApiError as error:
            log.warning(
                "telling the requester of expired request %s failed: %s",
                request.id,
                error.response.get("error"),
            )
            continue
        told += 1
    return told


async def tell_privately(client: AsyncWebClient, user_id: str, channel: str, text: str) -> None:
    """An ephemeral message for ``user_id`` alone: where they clicked, or else in their DM with the app."""
    try:
        if channel:
            try:
                await client.chat_postEphemeral(channel=channel, user=user_id, text=text)
                return
            except SlackApiError as error:
                if error.response.get("error") not in _NOT_THERE:
                    raise
        opened = await client.conversations_open(users=user_id)
        await client.chat_postEphemeral(channel=opened["channel"]["id"], user=user_id, text=text)
    except SlackApiError as error:
        log.warning("could not tell %s privately: %s", user_id, error.response.get("error"))


def _screen_context(ctx: ModalContext) -> ModalContext:
    return ModalContext(module=ctx.module, environment=ctx.environment, provider=ctx.provider)


def register(app: AsyncApp, services: Services) -> None:
    service = services.connections

    if service is None:

        async def unavailable(request: CommandRequest) -> None:
            await request.ack(text=UNAVAILABLE)

        @app.action(OPEN_ACTION)
        async def open_unavailable(
            ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
        ) -> None:
            await ack()
            channel = str((body.get("container") or {}).get("channel_id") or "")
            services.tasks.spawn(
                tell_privately(client, str(context.user_id), channel, UNAVAILABLE),
                name="connections-unavailable",
            )

        services.subcommands.add("connections", unavailable, summary=SUMMARY)
        return

    modal = ConnectionsModal(services, service)

    def open_modal(
        client: AsyncWebClient, user_id: str, team_id: str, trigger_id: str, target: Sequence[str]
    ) -> None:
        module, environment = (*target, "", "")[:2]
        services.tasks.spawn(
            modal.open(
                client,
                user_id=user_id,
                team_id=team_id,
                trigger_id=trigger_id,
                module=module,
                environment=environment,
            ),
            name="connections-open",
        )

    async def connections(request: CommandRequest) -> None:
        if len(request.args) > 2:
            await request.ack(text=f"Usage: `/ib connections {ARGUMENTS}`")
            return
        await request.ack()
        open_modal(request.client, request.user_id, request.team_id, request.trigger_id, request.args)

    services.subcommands.add("connections", connections, summary=SUMMARY)

    @app.action(OPEN_ACTION)
    async def open_connections(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        target = parse_target(str(action.get("value", "")))
        open_modal(
            client, str(context.user_id), str(context.team_id), str(body.get("trigger_id", "")), target
        )

    modal_actions = (
        PICK_ACTION,
        ENV_ACTION,
        BACK_ACTION,
        NEW_ACTION,
        EDIT_ACTION,
        RETEST_ACTION,
        DELETE_ACTION,
        ASK_ACTION,
        TEST_ACTION,
    )

    @app.action(re.compile(f"^({'|'.join(modal_actions)})$"))
    async def modal_action(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        if "view" in body and kind_of(str(body["view"].get("callback_id", ""))):
            services.tasks.spawn(modal.act(client, context, body["view"], action), name="connections-action")

    @app.view(re.compile(f"^{re.escape(CALLBACK_ID)}:"))
    async def submission(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await modal.submit(ack, body, client, context)

    @app.options(CONNECTION_BLOCK)
    async def connection_suggestions(ack: AsyncAck, body: dict[str, Any]) -> None:
        await modal.suggest(ack, body)

    @app.action(re.compile(f"^({ADMIN_OPEN_ACTION}|{CANCEL_REQUEST_ACTION})$"))
    async def admin_request_button(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        action_id = str(action.get("action_id", ""))
        work = modal.open_request if action_id == ADMIN_OPEN_ACTION else modal.cancel_request
        services.tasks.spawn(
            work(client, str(context.user_id), body, str(action.get("value", ""))),
            name=f"connections-{action_id}",
        )
