"""The integration wizard's listeners: `/ib new`, the "Create integration" shortcut, each step's
submission, Back/Change, Resume/Start over, and the object search.

One modal, updated in place; its views carry only the draft id (``private_metadata``) and the
step they show (``callback_id``). Everything else is in the draft row, saved with the version it
was read at, so a retried or double-clicked submission finds the draft moved on (or loses the
race with :class:`~storage.StaleDraft`) and answers with the view the draft is at instead of
doing the step twice. Acks answer within milliseconds; fetching metadata and every Slack call run
afterwards in :class:`~handlers.tasks.BackgroundTasks`.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncSession

from generator.errors import GenerationError
from generator.publisher import PublishRefused
from generator.spec import IntegrationSpec
from handlers.catalogs import writable
from handlers.customize import CustomizeError
from handlers.services import CommandRequest, Services
from handlers.sources import read_catalog
from handlers.tasks import after_ack
from handlers.views.wizard import (
    BACK_ACTION,
    CALLBACK_ID,
    OBJECTS_RO,
    OBJECTS_RW,
    loading_view,
    notice_view,
    object_option,
    objects_step,
    provider_step,
    publishing_view,
    resume_view,
    review_step,
    settings_step,
    source_step,
    step_of,
)
from handlers.wizard_state import STEPS, WizardState
from handlers.wizard_steps import (
    Errors,
    KeepCatalog,
    SourceLoad,
    back_target,
    build_spec,
    implemented_provider,
    keep_typed,
    loaded,
    module_name_candidates,
    submit_objects,
    submit_provider,
    submit_settings,
    submit_source,
    suggest_settings,
)
from providers.base import ProviderError, all_providers
from providers.model import Catalog
from storage import Drafts, Integrations, StaleDraft
from storage.models import Draft

log = logging.getLogger(__name__)

Check = Callable[[AsyncSession], Awaitable[Errors | None]]
RECENT_DRAFTS = 1024

SHORTCUT = "create_integration"
RESUME_ACTION = "wizard_resume"
START_OVER_ACTION = "wizard_start_over"
GONE = "This draft no longer exists. Start again with /ib new."
NOT_YOURS = "This integration draft belongs to someone else."
ABANDONED = "This draft was replaced by a newer one. Use /ib new to continue."
READ_ONLY_IN_SYSTEM = "read only in the system"


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


class Wizard:
    """The wizard's behaviour; :func:`register` wires it to bolt."""

    def __init__(self, services: Services) -> None:
        self.services = services
        # This process's last copy of recently used drafts: spares the ack path a read.
        self._recent: OrderedDict[str, Draft] = OrderedDict()

    # Opening

    async def open(self, client: AsyncWebClient, *, user_id: str, team_id: str, trigger_id: str) -> None:
        """Open the modal with a Loading view (a trigger lives 3 s), then show the user's unfinished
        draft (Resume / Start over) or a new draft's first step.

        A trigger opens one view only (Slack answers ``exchanged_trigger_id`` after that), so a
        retried or replayed request opens nothing and creates no draft.
        """
        try:
            opened = await client.views_open(trigger_id=trigger_id, view=loading_view(""))
        except SlackApiError as error:
            code = error.response.get("error")
            log.log(
                logging.INFO if code == "exchanged_trigger_id" else logging.WARNING,
                "wizard not opened: %s",
                code,
            )
            return
        shown = opened["view"]
        async with self.services.units.reading() as session:
            unfinished = await Drafts(session).open_for(user_id, team_id)
        created = None
        if not unfinished:
            async with self.services.units.writing() as session:
                drafts = Drafts(session)
                # Looked up again where the draft is created, so two quick /ib new make one draft.
                unfinished = await drafts.open_for(user_id, team_id)
                if not unfinished:
                    created = await drafts.create(
                        owner_user_id=user_id, team_id=team_id, step="provider", state=WizardState().to_dict()
                    )
        if created is not None:
            view = provider_step(created.id, WizardState(), all_providers())
        else:
            draft = unfinished[0]
            when = int(draft.updated_at.timestamp())
            updated = (
                f"<!date^{when}^{{date_short_pretty}} at {{time}}|{draft.updated_at:%Y-%m-%d %H:%M} UTC>"
            )
            view = resume_view(draft.id, WizardState.from_dict(draft.state), updated)
        await self._update(client, shown["id"], view, view_hash=shown["hash"])

    # Views of a draft

    async def view_of(self, draft: Draft) -> dict[str, Any]:
        """The view of the step the draft is at; a step whose catalog is gone falls back to the source."""
        state = WizardState.from_dict(draft.state)
        if draft.status == "published":
            return publishing_view(draft.id, state.settings.module_name)
        if draft.status != "open":
            return notice_view(ABANDONED)
        provider = implemented_provider(state)
        if provider is None:
            state.step = "provider"
            return provider_step(draft.id, state, all_providers())
        if state.step in ("provider", "source"):
            if state.step == "provider":
                return provider_step(draft.id, state, all_providers())
            return source_step(draft.id, state, provider, provider.source_fields())
        entry = await self.services.catalogs.get(draft.id)
        if entry is None:
            # The cache entry went away (it never should): ask for the metadata again.
            state.step = "source"
            state.source.error = "The metadata is no longer loaded. Give it again."
            await self._save(draft, state)
            return source_step(draft.id, state, provider, provider.source_fields())
        if state.step == "objects":
            return objects_step(draft.id, state, entry.index.labels(state.selected_objects))
        if state.step == "settings":
            return settings_step(draft.id, state)
        return review_step(draft.id, state, provider.title)

    async def _draft(self, draft_id: str, *, fresh: bool = True) -> Draft | None:
        """The draft as stored; ``fresh=False`` may answer with this process's last copy, which is
        safe where a decision is only written through :meth:`_save` (its version check catches a
        copy that another replica has made stale)."""
        if not draft_id:
            return None
        recent = None if fresh else self._recent.get(draft_id)
        if recent is not None:
            self._recent.move_to_end(draft_id)
            return recent
        async with self.services.units.reading() as session:
            draft = await Drafts(session).get(draft_id)
        if draft is not None:
            self._remember(draft)
        return draft

    def _remember(self, draft: Draft) -> None:
        self._recent[draft.id] = draft
        self._recent.move_to_end(draft.id)
        while len(self._recent) > RECENT_DRAFTS:
            self._recent.popitem(last=False)

    async def _save(
        self, draft: Draft, state: WizardState, *, status: str | None = None, check: Check | None = None
    ) -> Draft | Errors | None:
        """Store ``state`` if nobody changed the draft since it was read; None if somebody did.

        ``check`` runs first in the same unit of work (a lookup that must agree with the write,
        such as "is this module name free?"); the errors it returns are returned and nothing is saved.
        """
        try:
            async with self.services.units.writing() as session:
                errors = await check(session) if check is not None else None
                if errors:
                    return errors
                saved = await Drafts(session).save(
                    draft.id,
                    expected_version=draft.version,
                    step=state.step,
                    state=state.to_dict(),
                    status=status,
                )
        except StaleDraft:
            self._recent.pop(draft.id, None)
            return None
        self._remember(saved)
        return saved

    async def _current_view(self, draft_id: str) -> dict[str, Any]:
        draft = await self._draft(draft_id)
        return notice_view(GONE) if draft is None else await self.view_of(draft)

    async def _update(
        self, client: AsyncWebClient, view_id: str, view: dict[str, Any], *, view_hash: str | None = None
    ) -> None:
        try:
            await client.views_update(view_id=view_id, view=view, hash=view_hash)
        except SlackApiError as error:
            code = error.response.get("error")
            # The user closed the modal or it changed meanwhile: the draft keeps the state anyway.
            level = logging.INFO if code in ("not_found", "hash_conflict") else logging.WARNING
            log.log(level, "views.update of the wizard failed: %s", code)

    # Submissions (the ack path)

    async def submit(
        self, ack: AsyncAck, body: Mapping[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        shown = body["view"]
        step = step_of(str(shown.get("callback_id", "")))
        draft_id = str(shown.get("private_metadata", ""))
        draft = await self._draft(draft_id, fresh=False)
        if draft is not None and (draft.status != "open" or draft.step != step):
            draft = await self._draft(draft_id)  # the copy may be behind another replica
        if draft is None:
            await ack(response_action="update", view=notice_view(GONE))
            return
        if (draft.owner_user_id, draft.team_id) != (context.user_id, context.team_id):
            log.warning("user %s submitted a wizard view of someone else's draft", context.user_id)
            await _refuse(ack, shown, NOT_YOURS)
            return
        if draft.status != "open" or draft.step != step:
            # A retry or a double click of a step already done, or a view older than the draft.
            await ack(response_action="update", view=await self.view_of(draft))
            return
        state = WizardState.from_dict(draft.state)
        values: Mapping[str, Mapping[str, Any]] = shown.get("state", {}).get("values", {})
        if step == "provider":
            await self._after_step(ack, draft, state, submit_provider(state, values))
        elif step == "source":
            await self._submit_source(ack, client, context, draft, state, values, shown)
        elif step == "objects":
            await self._submit_objects(ack, draft, state, values)
        elif step == "settings":
            await self._submit_settings(ack, draft, state, values)
        else:
            await self._publish(ack, client, context, draft, state, shown)

    async def _after_step(
        self,
        ack: AsyncAck,
        draft: Draft,
        state: WizardState,
        errors: Errors | None,
        check: Check | None = None,
    ) -> None:
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        saved = await self._save(draft, state, check=check)
        if isinstance(saved, dict):
            await ack(response_action="errors", errors=saved)
        elif saved is None:
            await ack(response_action="update", view=await self._current_view(draft.id))
        else:
            await ack(response_action="update", view=await self.view_of(saved))

    async def _submit_source(
        self,
        ack: AsyncAck,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        draft: Draft,
        state: WizardState,
        values: Mapping[str, Mapping[str, Any]],
        shown: Mapping[str, Any],
    ) -> None:
        provider = implemented_provider(state)
        if provider is None:
            state.step = "provider"
            await self._after_step(ack, draft, state, None)
            return
        outcome = submit_source(
            state,
            values,
            provider.source_fields(),
            max_file_bytes=self.services.metadata_max_bytes,
            slack_api_url=self.services.slack_api_url,
        )
        if isinstance(outcome, dict):
            await self._after_step(ack, draft, state, outcome)
            return
        if isinstance(outcome, KeepCatalog):
            state.source.error = ""
            state.step = "objects"
            await self._after_step(ack, draft, state, None)
            return
        # Keep what was typed (no password), so a failed load shows it again.
        if not isinstance(await self._save(draft, state), Draft):
            await ack(response_action="update", view=await self._current_view(draft.id))
            return
        await ack(response_action="update", view=loading_view(draft.id, "Reading the metadata…"))
        self.services.tasks.spawn(
            self.load_source(client, context, draft.id, str(shown["id"]), outcome),
            name=f"wizard-load-{draft.id}",
        )

    async def load_source(
        self, client: AsyncWebClient, context: AsyncBoltContext, draft_id: str, view_id: str, load: SourceLoad
    ) -> None:
        """Read the metadata after the ack, then show the objects step (or the source step with
        the reason it failed). The password in ``load`` is used for the fetch and then dropped."""
        await after_ack(context)
        draft = await self._draft(draft_id)
        provider = implemented_provider(WizardState.from_dict(draft.state)) if draft else None
        if draft is None or provider is None:
            return
        problem = ""
        try:
            catalog = await read_catalog(
                provider, load, bot_token=client.token or "", max_bytes=self.services.metadata_max_bytes
            )
        except ProviderError as error:
            problem = _sentence(str(error))
        except Exception:
            log.exception("reading the metadata of draft %s failed", draft_id)
            problem = "Reading the metadata failed unexpectedly. Try again, or ask the service's admin."
        load = replace(load, source=replace(load.source, password=None, data=b""))
        draft = await self._draft(draft_id)
        if draft is None or draft.status != "open" or draft.step != "source":
            return  # the user went elsewhere meanwhile
        state = WizardState.from_dict(draft.state)
        if problem:
            state.source.error = problem
        else:
            await self.services.catalogs.put(draft.id, draft.owner_user_id, draft.team_id, catalog)
            loaded(state, load, catalog)
        saved = await self._save(draft, state)
        if isinstance(saved, Draft):
            await self._update(client, view_id, await self.view_of(saved))

    async def _submit_objects(
        self, ack: AsyncAck, draft: Draft, state: WizardState, values: Mapping[str, Mapping[str, Any]]
    ) -> None:
        entry = await self.services.catalogs.get(draft.id)
        if entry is None:
            await ack(response_action="update", view=await self.view_of(draft))
            return
        errors = submit_objects(state, values, entry.index)

        async def suggest(session: AsyncSession) -> None:
            candidates = module_name_candidates(state)
            suggest_settings(state, await _taken(session, draft.team_id, candidates) if candidates else set())

        await self._after_step(ack, draft, state, errors, suggest)

    async def _submit_settings(
        self, ack: AsyncAck, draft: Draft, state: WizardState, values: Mapping[str, Mapping[str, Any]]
    ) -> None:
        errors = submit_settings(state, values)
        if not errors:
            entry = await self.services.catalogs.get(draft.id)
            if entry is None:
                await ack(response_action="update", view=await self.view_of(draft))
                return
            try:
                build_spec(state, entry.index)
            except (CustomizeError, GenerationError) as error:
                errors = {"module_name": _sentence(str(error))}

        async def free(session: AsyncSession) -> Errors | None:
            name = state.settings.module_name
            if await _taken(session, draft.team_id, {name}):
                return {"module_name": f"{name} is already taken in this workspace: choose another name."}
            return None

        await self._after_step(ack, draft, state, errors, free)

    async def _publish(
        self,
        ack: AsyncAck,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        draft: Draft,
        state: WizardState,
        shown: Mapping[str, Any],
    ) -> None:
        entry = await self.services.catalogs.get(draft.id)
        provider = implemented_provider(state)
        if entry is None or provider is None:
            await ack(response_action="update", view=await self.view_of(draft))
            return
        try:
            spec = build_spec(state, entry.index)
        except (CustomizeError, GenerationError) as error:
            problem = _sentence(str(error))
            await ack(response_action="update", view=review_step(draft.id, state, provider.title, problem))
            return
        await ack(response_action="update", view=publishing_view(draft.id, spec.module_name))
        self.services.tasks.spawn(
            self.publish(client, context, draft, spec, entry.index.catalog, str(shown["id"])),
            name=f"wizard-publish-{draft.id}",
        )

    async def publish(
        self,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        draft: Draft,
        spec: IntegrationSpec,
        catalog: Catalog,
        view_id: str,
    ) -> None:
        """Queue the publish job (once per draft, whatever retries and double clicks do) and mark
        the draft published; a refusal takes the user back to the review with the reason."""
        await after_ack(context)
        state = WizardState.from_dict(draft.state)
        try:
            job = await self.services.publisher.submit(
                team_id=draft.team_id,
                user_id=draft.owner_user_id,
                spec=spec,
                catalog=catalog,
                environment=self.services.environment,
                dedup_key=f"draft:{draft.id}",
                draft_id=draft.id,
            )
        except PublishRefused as error:
            problem = _sentence(str(error))
        except Exception:
            log.exception("queueing the publish of draft %s failed", draft.id)
            problem = "Publishing could not start because of an internal error. Try again in a moment."
        else:
            if isinstance(await self._save(draft, state, status="published"), Draft):
                log.info("draft %s queued as publish job %s (%s)", draft.id, job.id, spec.module_name)
            return
        provider = implemented_provider(state)
        title = provider.title if provider else state.provider
        await self._update(client, view_id, review_step(draft.id, state, title, problem))

    # Buttons (ack at once, work afterwards)

    async def go_back(
        self, client: AsyncWebClient, context: AsyncBoltContext, shown: Mapping[str, Any], requested: str
    ) -> None:
        """Back or Change: keep what the view holds, then show the requested earlier step."""
        draft = await self._owned_open_draft(context, str(shown.get("private_metadata", "")))
        if draft is None:
            return
        step = step_of(str(shown.get("callback_id", "")))
        state = WizardState.from_dict(draft.state)
        if step in STEPS and step == draft.step:
            provider = implemented_provider(state)
            values = shown.get("state", {}).get("values", {})
            keep_typed(step, state, values, provider.source_fields() if provider else ())
            state.step = back_target(step, requested, state)
            saved = await self._save(draft, state)
            if not isinstance(saved, Draft):
                return  # a double click: the first click moves the modal
            draft = saved
        await self._update(client, str(shown["id"]), await self.view_of(draft), view_hash=shown.get("hash"))

    async def resume(
        self, client: AsyncWebClient, context: AsyncBoltContext, shown: Mapping[str, Any]
    ) -> None:
        draft = await self._owned_open_draft(context, str(shown.get("private_metadata", "")))
        view = notice_view(GONE) if draft is None else await self.view_of(draft)
        await self._update(client, str(shown["id"]), view, view_hash=shown.get("hash"))

    async def start_over(
        self, client: AsyncWebClient, context: AsyncBoltContext, shown: Mapping[str, Any]
    ) -> None:
        draft = await self._owned_open_draft(context, str(shown.get("private_metadata", "")))
        if draft is None:
            return
        try:
            async with self.services.units.writing() as session:
                drafts = Drafts(session)
                await drafts.save(
                    draft.id,
                    expected_version=draft.version,
                    step=draft.step,
                    state=draft.state,
                    status="abandoned",
                )
                fresh = await drafts.create(
                    owner_user_id=draft.owner_user_id,
                    team_id=draft.team_id,
                    step="provider",
                    state=WizardState().to_dict(),
                )
        except StaleDraft:
            return  # a double click: the first one starts over
        self.services.catalogs.forget(draft.id)
        view = provider_step(fresh.id, WizardState(), all_providers())
        await self._update(client, str(shown["id"]), view, view_hash=shown.get("hash"))

    async def _owned_open_draft(self, context: AsyncBoltContext, draft_id: str) -> Draft | None:
        draft = await self._draft(draft_id)
        if draft is None or draft.status != "open":
            return None
        if (draft.owner_user_id, draft.team_id) != (context.user_id, context.team_id):
            log.warning("user %s acted on someone else's draft", context.user_id)
            return None
        return draft

    # Object search (block_suggestion, answered in the ack)

    async def suggest(self, ack: AsyncAck, body: Mapping[str, Any], context: AsyncBoltContext) -> None:
        draft_id = str(body.get("view", {}).get("private_metadata", ""))
        catalogs = self.services.catalogs
        entry = catalogs.cached(draft_id) or (await catalogs.get(draft_id) if draft_id else None)
        if entry is None or (entry.owner_user_id, entry.team_id) != (context.user_id, context.team_id):
            await ack(options=[])
            return
        read_write = body.get("action_id") == OBJECTS_RW
        options = [
            object_option(obj.name, obj.label, "" if writable(obj) or not read_write else READ_ONLY_IN_SYSTEM)
            for obj in entry.index.search(str(body.get("value", "")))
        ]
        await ack(options=options)


async def _taken(session: AsyncSession, team_id: str, names: set[str]) -> set[str]:
    integrations = Integrations(session)
    return {name for name in names if await integrations.by_module(team_id, name) is not None}


async def _refuse(ack: AsyncAck, shown: Mapping[str, Any], message: str) -> None:
    """Answer a submission that must change nothing: an error under its first input, if it has one."""
    first_input = next(
        (block.get("block_id") for block in shown.get("blocks", []) if block.get("type") == "input"), None
    )
    if first_input:
        await ack(response_action="errors", errors={first_input: message})
    else:
        await ack(response_action="update", view=notice_view(message))


def register(app: AsyncApp, services: Services) -> None:
    wizard = Wizard(services)

    async def new(request: CommandRequest) -> None:
        await request.ack()
        services.tasks.spawn(
            wizard.open(
                request.client,
                user_id=request.user_id,
                team_id=request.team_id,
                trigger_id=request.trigger_id,
            ),
            name="wizard-open",
        )

    services.subcommands.add("new", new, summary="create an integration with the wizard")

    @app.shortcut(SHORTCUT)
    async def create_integration(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        services.tasks.spawn(
            wizard.open(
                client,
                user_id=str(context.user_id),
                team_id=str(context.team_id),
                trigger_id=str(body.get("trigger_id", "")),
            ),
            name="wizard-open",
        )

    @app.view(re.compile(f"^{re.escape(CALLBACK_ID)}:"))
    async def wizard_submission(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await wizard.submit(ack, body, client, context)

    @app.action(BACK_ACTION)
    async def wizard_back(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        if "view" in body:
            services.tasks.spawn(
                wizard.go_back(client, context, body["view"], str(action.get("value", ""))),
                name="wizard-back",
            )

    @app.action(RESUME_ACTION)
    async def wizard_resume(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        if "view" in body:
            services.tasks.spawn(wizard.resume(client, context, body["view"]), name="wizard-resume")

    @app.action(START_OVER_ACTION)
    async def wizard_start_over(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        if "view" in body:
            services.tasks.spawn(wizard.start_over(client, context, body["view"]), name="wizard-start-over")

    @app.options(re.compile(f"^({OBJECTS_RW}|{OBJECTS_RO})$"))
    async def object_suggestions(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await wizard.suggest(ack, body, context)
