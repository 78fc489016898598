"""The integration wizard's listeners: `/ib new`, the "Create integration" shortcut, each step's
submission, Back/Change, Resume/Start over, and the object search.

One modal, updated in place; its views carry only the draft id (``private_metadata``) and the
step they show (``callback_id``). Everything else is in the draft (:mod:`handlers.drafts`: written
with the version it was based on, inside the ack where replicas share the database), so a retried
or double-clicked submission, on this replica or another, finds the draft moved on and answers
with the view the draft is at instead of doing the step twice. Acks answer within milliseconds;
fetching metadata and every Slack call run afterwards in :class:`~handlers.tasks.BackgroundTasks`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from generator.errors import GenerationError
from generator.publisher import PublishRefused
from generator.spec import IntegrationSpec
from handlers.catalogs import DraftCatalog, writable
from handlers.customize import CustomizeError
from handlers.drafts import DraftCopy
from handlers.services import CommandRequest, Services
from handlers.signin import CallbackResult, SignIns
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
    ObjectsChoice,
    SourceLoad,
    back_target,
    build_spec,
    check_object_names,
    choose_objects,
    implemented_provider,
    keep_typed,
    loaded,
    module_name_candidates,
    read_objects,
    submit_objects,
    submit_provider,
    submit_settings,
    submit_source,
    suggest_settings,
)
from providers.base import (
    Provider,
    ProviderError,
    SessionExpired,
    SignInExpired,
    all_providers,
    complete_catalog,
)
from providers.model import Catalog

log = logging.getLogger(__name__)

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
        self.drafts = services.drafts
        self.signins = SignIns(services)

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
            level = logging.INFO if code == "exchanged_trigger_id" else logging.WARNING
            log.log(level, "wizard not opened: %s", code)
            return
        shown = opened["view"]
        draft = await self.drafts.open_for(user_id, team_id)
        if draft is None:
            draft = await self.drafts.create(owner_user_id=user_id, team_id=team_id)
            view = provider_step(draft.id, WizardState.from_dict(draft.state), all_providers())
        else:
            when = int(draft.updated_at.timestamp())
            updated = (
                f"<!date^{when}^{{date_short_pretty}} at {{time}}|{draft.updated_at:%Y-%m-%d %H:%M} UTC>"
            )
            view = resume_view(draft.id, WizardState.from_dict(draft.state), updated)
        await self._update(client, shown["id"], view, view_hash=shown["hash"])

    # Views of a draft

    async def view_of(self, draft: DraftCopy) -> dict[str, Any]:
        """The view of the step the draft is at; a step whose catalog is gone falls back to the source."""
        state = WizardState.from_dict(draft.state)
        if draft.status == "published":
            return publishing_view(draft.id, state.settings.module_name)
        if draft.status != "open":
            return notice_view(ABANDONED)
        provider = implemented_provider(state)
        if provider is None or state.step == "provider":
            state.step = "provider"
            return provider_step(draft.id, state, all_providers())
        if state.step == "source":
            return await self._source_view(draft, state)
        entry = await self._catalog(draft)
        if entry is None:
            # The cached catalog went away (it never should): ask for the metadata again.
            state.step = "source"
            state.source.error = "The metadata is no longer loaded. Give it again."
            await self.drafts.change(draft, state)
            return await self._source_view(draft, state)
        if state.step == "objects":
            return objects_step(draft.id, state, entry.index.labels(state.selected_objects))
        if state.step == "settings":
            return settings_step(draft.id, state)
        return review_step(draft.id, state, provider.title)

    async def _catalog(self, draft: DraftCopy) -> DraftCatalog | None:
        """The catalog the draft was given, not an older one cached here (see handlers/catalogs.py)."""
        catalog = draft.state.get("catalog") or {}
        return await self.services.catalogs.get(draft.id, str(catalog.get("digest", "")))

    async def _source_view(self, draft: DraftCopy, state: WizardState) -> dict[str, Any]:
        provider = implemented_provider(state)
        assert provider is not None
        signed_in = await self.signins.signed_in(draft.id) if self.signins.available(provider.key) else None
        if signed_in is not None:
            # The source step goes on from the sign-in (choosing the environment, searching the site).
            return source_step(draft.id, state, provider, provider.source_fields(), signed_in=signed_in)
        try:
            sign_in_url = await self.signins.start(draft, state)
        except ProviderError as error:
            return source_step(
                draft.id, state, provider, provider.source_fields(), sign_in_problem=_sentence(str(error))
            )
        return source_step(draft.id, state, provider, provider.source_fields(), sign_in_url=sign_in_url)

    async def signed_in(self, client: AsyncWebClient, result: CallbackResult) -> None:
        """After the sign-in callback: read the objects with the new token, or show why not. The
        browser may come back before Slack delivers the button's click, which names the modal:
        whichever of the two comes second updates it (see handlers/signin.py)."""
        if result.load is not None:
            await self.load_source(client, AsyncBoltContext(), result.draft_id, "", result.load)
        else:
            draft = await self.drafts.get(result.draft_id, fresh=True)
            if draft is None or draft.status != "open" or draft.step != "source":
                return
            if result.problem or draft.state.get("source", {}).get("error"):
                state = WizardState.from_dict(draft.state)
                state.source.error = result.problem
                await self.drafts.change(draft, state)
        view_id = result.view_id or await self.signins.finished(result.state)
        if view_id:
            await self.show(client, result.draft_id, view_id)

    async def show(self, client: AsyncWebClient, draft_id: str, view_id: str) -> None:
        """Show the draft's current step in the modal ``view_id``."""
        await self._update(client, view_id, await self._current_view(draft_id))

    async def _current_view(self, draft_id: str) -> dict[str, Any]:
        draft = await self.drafts.get(draft_id, fresh=True)
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

    async def _at(self, draft_id: str, step: str) -> DraftCopy | None:
        """The draft, read again if this process's copy is not at ``step`` (another window, or the
        process's own write of a double click, may have moved it on); on a shared database every
        :meth:`DraftStore.get` reads it anyway."""
        draft = await self.drafts.get(draft_id)
        if draft is not None and (draft.status != "open" or draft.step != step):
            draft = await self.drafts.get(draft_id, fresh=True)
        return draft

    # Submissions (the ack path)

    async def submit(
        self, ack: AsyncAck, body: Mapping[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        shown = body["view"]
        step = step_of(str(shown.get("callback_id", "")))
        draft = await self._at(str(shown.get("private_metadata", "")), step)
        if draft is None:
            await ack(response_action="update", view=notice_view(GONE))
            return
        if not draft.owned_by(context.user_id, context.team_id):
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
            await self._submit_objects(ack, client, context, draft, state, values, shown)
        elif step == "settings":
            await self._submit_settings(ack, draft, state, values)
        else:
            await self._publish(ack, client, context, draft, state, shown)

    async def _after_step(
        self, ack: AsyncAck, draft: DraftCopy, state: WizardState, errors: Errors | None
    ) -> None:
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        changed = await self.drafts.change(draft, state)
        if changed is None:  # a double click: the other request moved the draft on
            await ack(response_action="update", view=await self._current_view(draft.id))
            return
        await ack(response_action="update", view=await self.view_of(changed))

    async def _submit_source(
        self,
        ack: AsyncAck,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        draft: DraftCopy,
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
        # What was typed (no password) is kept, to be shown again if loading fails.
        if await self.drafts.change(draft, state) is None:  # a double click: the other request loads it
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
        draft = await self.drafts.get(draft_id, fresh=True)
        provider = implemented_provider(WizardState.from_dict(draft.state)) if draft else None
        if draft is None or provider is None:
            return
        problem = ""
        try:
            load = await self.signins.authorized(draft, provider.key, load)
            catalog = await read_catalog(
                provider, load, bot_token=client.token or "", max_bytes=self.services.metadata_max_bytes
            )
            kept = await self.services.catalogs.put(draft.id, draft.owner_user_id, draft.team_id, catalog)
        except ProviderError as error:
            problem = _sentence(str(error))
        except Exception:
            log.exception("reading the metadata of draft %s failed", draft_id)
            problem = "Reading the metadata failed unexpectedly. Try again, or ask the service's admin."
        load = replace(load, source=replace(load.source, password=None, data=b""))
        draft = await self.drafts.get(draft_id, fresh=True)
        if draft is None or draft.status != "open" or draft.step != "source":
            return  # the user went elsewhere meanwhile
        state = WizardState.from_dict(draft.state)
        if problem:
            state.source.error = problem
        else:
            loaded(state, load, catalog, kept.digest)
        changed = await self.drafts.change(draft, state)
        if changed is not None and view_id:  # no view_id: the sign-in's caller shows it
            await self._update(client, view_id, await self.view_of(changed))

    async def _submit_objects(
        self,
        ack: AsyncAck,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        draft: DraftCopy,
        state: WizardState,
        values: Mapping[str, Mapping[str, Any]],
        shown: Mapping[str, Any],
    ) -> None:
        entry = await self._catalog(draft)
        if entry is None:
            await ack(response_action="update", view=await self.view_of(draft))
            return
        choice = read_objects(values)
        outlined = entry.index.catalog.outlined(choice.names)
        if outlined and not check_object_names(choice, entry.index):
            # Only listed so far: describe the chosen ones after the ack, then check the rest.
            state.read_write, state.read_only = choice.read_write, choice.read_only
            state.customizations = choice.customizations
            if await self.drafts.change(draft, state) is None:  # a double click: the other one reads
                await ack(response_action="update", view=await self._current_view(draft.id))
                return
            count = f"{len(outlined)} object{'s' if len(outlined) > 1 else ''}"
            await ack(response_action="update", view=loading_view(draft.id, f"Reading {count}…"))
            self.services.tasks.spawn(
                self.describe_objects(client, context, draft.id, str(shown["id"])),
                name=f"wizard-describe-{draft.id}",
            )
            return
        errors = submit_objects(state, values, entry.index)
        if not errors:
            await self._suggest_settings(draft, state)
        await self._after_step(ack, draft, state, errors)

    async def _suggest_settings(self, draft: DraftCopy, state: WizardState) -> None:
        candidates = module_name_candidates(state)
        if candidates:
            suggest_settings(state, await self.services.module_names.taken(draft.team_id, candidates))

    async def describe_objects(
        self, client: AsyncWebClient, context: AsyncBoltContext, draft_id: str, view_id: str
    ) -> None:
        """After the ack: describe the draft's chosen objects the catalog only outlines, then show
        the settings (or the objects step with what is wrong). A design-time session that ended
        meanwhile is renewed; one that cannot be takes the user to the source step to sign in
        again, every choice kept."""
        await after_ack(context)
        draft = await self.drafts.get(draft_id, fresh=True)
        provider = implemented_provider(WizardState.from_dict(draft.state)) if draft else None
        entry = await self._catalog(draft) if draft is not None else None
        if draft is None or provider is None or entry is None:
            return
        state = WizardState.from_dict(draft.state)
        problem = expired = ""
        try:
            catalog = await self._described(draft, provider, entry.index.catalog, state)
        except SignInExpired as error:
            expired = _sentence(str(error))
        except ProviderError as error:
            problem = _sentence(str(error))
        except Exception:
            log.exception("describing the objects of draft %s failed", draft_id)
            problem = "Reading the objects failed unexpectedly. Try again, or ask the service's admin."
        fresh = await self.drafts.get(draft_id, fresh=True)
        if fresh is None or fresh.status != "open" or fresh.state != draft.state:
            return  # the user went elsewhere meanwhile (Back, another window): that view stays
        if problem:
            await self._update(
                client,
                view_id,
                objects_step(draft.id, state, entry.index.labels(state.selected_objects), problem),
            )
            return
        if expired:
            state.step, state.source.error = "source", expired
            changed = await self.drafts.change(fresh, state)
        else:
            kept = await self.services.catalogs.put(draft.id, draft.owner_user_id, draft.team_id, catalog)
            assert state.catalog is not None
            state.catalog = replace(state.catalog, digest=kept.digest)
            choice = ObjectsChoice(state.read_write, state.read_only, state.customizations)
            errors = choose_objects(state, choice, kept.index)
            if not errors:
                await self._suggest_settings(fresh, state)
            changed = await self.drafts.change(fresh, state)
            if changed is not None and errors:
                labels = kept.index.labels(state.selected_objects)
                view = objects_step(draft.id, state, labels, " ".join(errors.values()))
                await self._update(client, view_id, view)
                return
        if changed is not None:
            await self._update(client, view_id, await self.view_of(changed))

    async def _described(
        self, draft: DraftCopy, provider: Provider, catalog: Catalog, state: WizardState
    ) -> Catalog:
        """``catalog`` with the chosen objects described, through the draft's sign-in."""
        source = await self.signins.design_source(draft, provider.key, state.source.options)
        try:
            return await complete_catalog(provider, catalog, source, state.selected_objects)
        except SessionExpired:
            source = await self.signins.design_source(draft, provider.key, state.source.options, renew=True)
            return await complete_catalog(provider, catalog, source, state.selected_objects)

    async def _submit_settings(
        self, ack: AsyncAck, draft: DraftCopy, state: WizardState, values: Mapping[str, Mapping[str, Any]]
    ) -> None:
        errors = submit_settings(state, values)
        if not errors:
            entry = await self._catalog(draft)
            if entry is None:
                await ack(response_action="update", view=await self.view_of(draft))
                return
            name = state.settings.module_name
            try:
                build_spec(state, entry.index)
            except (CustomizeError, GenerationError) as error:
                errors = {"module_name": _sentence(str(error))}
            else:
                # The publisher checks again: a name taken in the last seconds is refused there.
                if await self.services.module_names.taken(draft.team_id, {name}):
                    errors = {
                        "module_name": f"{name} is already taken in this workspace: choose another name."
                    }
        await self._after_step(ack, draft, state, errors)

    async def _publish(
        self,
        ack: AsyncAck,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        draft: DraftCopy,
        state: WizardState,
        shown: Mapping[str, Any],
    ) -> None:
        entry = await self._catalog(draft)
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
        draft: DraftCopy,
        spec: IntegrationSpec,
        catalog: Catalog,
        view_id: str,
    ) -> None:
        """Queue the publish job (once per draft, whatever retries and double clicks do) and mark
        the draft published; a refusal takes the user back to the review with the reason."""
        await after_ack(context)
        state = WizardState.from_dict(draft.state)
        try:
            await _require_developer(self.services, draft.owner_user_id)
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
            await self.drafts.change(draft, state, status="published")
            log.info("draft %s queued as publish job %s (%s)", draft.id, job.id, spec.module_name)
            return
        provider = implemented_provider(state)
        title = provider.title if provider else state.provider
        await self._update(client, view_id, review_step(draft.id, state, title, problem))

    # Buttons (ack at once, work afterwards)

    async def go_back(
        self, client: AsyncWebClient, context: AsyncBoltContext, shown: Mapping[str, Any], requested: str
    ) -> None:
        """Back or Change: keep what the view holds, then show the requested earlier step (the same
        step when ``requested`` is not earlier: what a changed sign-in choice uses)."""
        step = step_of(str(shown.get("callback_id", "")))
        draft = await self._at(str(shown.get("private_metadata", "")), step)
        if draft is None or not self._may_act(draft, context):
            return
        if step in STEPS and step == draft.step:
            state = WizardState.from_dict(draft.state)
            provider = implemented_provider(state)
            values = shown.get("state", {}).get("values", {})
            keep_typed(step, state, values, provider.source_fields() if provider else ())
            state.step = back_target(step, requested, state)
            changed = await self.drafts.change(draft, state)
            if changed is None:
                return  # a double click: the first click moves the modal
            draft = changed
        # Else a double click or an old view: the view is brought to where the draft is (when the
        # first click moved it already, the hash no longer matches and nothing changes).
        await self._update(client, str(shown["id"]), await self.view_of(draft), view_hash=shown.get("hash"))

    async def resume(
        self, client: AsyncWebClient, context: AsyncBoltContext, shown: Mapping[str, Any]
    ) -> None:
        draft = await self.drafts.get(str(shown.get("private_metadata", "")), fresh=True)
        if draft is not None and not self._may_act(draft, context):
            return
        view = notice_view(GONE) if draft is None else await self.view_of(draft)
        await self._update(client, str(shown["id"]), view, view_hash=shown.get("hash"))

    async def start_over(
        self, client: AsyncWebClient, context: AsyncBoltContext, shown: Mapping[str, Any]
    ) -> None:
        draft = await self.drafts.get(str(shown.get("private_metadata", "")), fresh=True)
        if draft is None or not self._may_act(draft, context):
            return
        fresh = await self.drafts.start_over(draft)
        if fresh is None:
            return  # a double click: the first one starts over
        self.services.catalogs.forget(draft.id)
        view = provider_step(fresh.id, WizardState(), all_providers())
        await self._update(client, str(shown["id"]), view, view_hash=shown.get("hash"))

    def _may_act(self, draft: DraftCopy, context: AsyncBoltContext) -> bool:
        if not draft.owned_by(context.user_id, context.team_id):
            log.warning("user %s acted on someone else's draft", context.user_id)
            return False
        return draft.status == "open"

    # Object search (block_suggestion, answered in the ack)

    async def suggest(self, ack: AsyncAck, body: Mapping[str, Any], context: AsyncBoltContext) -> None:
        # On the embedded default the draft and its catalog are in memory; replicas read the draft
        # (one row) to know which catalog it has now.
        draft = await self.drafts.get(str(body.get("view", {}).get("private_metadata", "")))
        entry = await self._catalog(draft) if draft is not None else None
        if entry is None or (entry.owner_user_id, entry.team_id) != (context.user_id, context.team_id):
            await ack(options=[])
            return
        read_write = body.get("action_id") == OBJECTS_RW
        options = [
            _option(obj.name, obj.label, "" if writable(obj) or not read_write else READ_ONLY_IN_SYSTEM)
            for obj in entry.index.search(str(body.get("value", "")))
        ]
        await ack(options=options)


async def _require_developer(services: Services, user_id: str) -> None:
    environment = services.environment
    if not await services.has_role(user_id, "developer", environment):
        raise PublishRefused(
            f"publishing to {environment} needs the developer role there; an admin grants it with "
            f"`ib access grant {user_id} developer {environment}`"
        )


# Every keystroke in a picker asks for up to 100 options: build each one once (never mutated).
_option = functools.lru_cache(maxsize=8192)(object_option)


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

    def open_wizard(client: AsyncWebClient, user_id: str, team_id: str, trigger_id: str) -> None:
        services.tasks.spawn(
            wizard.open(client, user_id=user_id, team_id=team_id, trigger_id=trigger_id), name="wizard-open"
        )

    async def new(request: CommandRequest) -> None:
        await request.ack()
        open_wizard(request.client, request.user_id, request.team_id, request.trigger_id)

    services.subcommands.add("new", new, summary="create an integration with the wizard")

    @app.shortcut(SHORTCUT)
    async def create_integration(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        open_wizard(client, str(context.user_id), str(context.team_id), str(body.get("trigger_id", "")))

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

    # A source field saying where to sign in changed (it dispatches its action): keep it and show
    # the source step again, whose sign-in button then goes there.
    sign_in_fields = {f.name for p in all_providers() for f in p.source_fields() if f.sign_in}
    if sign_in_fields:

        @app.action(
            {
                "block_id": re.compile(r"^source_"),
                "action_id": re.compile("^(" + "|".join(map(re.escape, sorted(sign_in_fields))) + ")$"),
            }
        )
        async def wizard_sign_in_choice(
            ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
        ) -> None:
            await ack()
            if "view" in body:
                services.tasks.spawn(
                    wizard.go_back(client, context, body["view"], "source"), name="wizard-sign-in-choice"
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
