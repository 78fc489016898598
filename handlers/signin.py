"""Signing in to the external system from the wizard's source step (design-time authorization).

The source step shows a URL button to the provider's authorize page. What the callback needs to
finish (the PKCE verifier, the login host) stays in an ``oauth_states`` row keyed by the ``state``
the URL carries, encrypted with the :class:`SecretBox`, bound to the draft and its owner and good
for :data:`SIGN_IN_TTL`. The tokens the callback gets replace it there, encrypted too, for
:data:`SIGNED_IN_TTL`: they never reach the draft's JSON, a view, a message or a log. A row is used
once, so a replayed callback changes nothing.

Which modal to move on is known only from the button's click (a ``block_actions`` Slack sends
beside opening the browser), and a cached login brings the browser back before that click may
arrive. So the click and the callback's outcome meet in the row, in either order: the click notes
its modal there (:meth:`SignIns.clicked`), the callback notes that its work is done
(:meth:`SignIns.finished`), and whichever comes second updates the modal, once. Every write of a
row reads it under a row lock (SQLite: ``BEGIN IMMEDIATE``) and merges, so neither loses the other's
note, on any replica.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.drafts import DraftCopy
from handlers.services import Services
from handlers.views.blocks import option
from handlers.views.wizard import SEARCH_FAILED, SIGN_IN_ACTION
from handlers.wizard_state import WizardState
from handlers.wizard_steps import SourceLoad
from providers.base import (
    DesignSignIn,
    MetadataSource,
    ProviderError,
    SignInExpired,
    SignInRefused,
    all_providers,
    callback_path,
    design_sign_in,
    get_provider,
)
from storage import SecretBox
from storage.models import OAuthState, utcnow

log = logging.getLogger(__name__)

SIGN_IN_TTL = timedelta(minutes=10)
# How long the wizard may use a finished sign-in's tokens (then the user signs in again).
SIGNED_IN_TTL = timedelta(hours=12)
# A kept access token is renewed this long before it expires.
TOKEN_MARGIN_S = 60
FORGED = (
    "This sign-in link is not valid (forged, already used or older than 10 minutes). Nothing was "
    "changed: go back to Slack and press the sign-in button of the wizard again."
)
DENIED = "consent was denied"
# Keys of a row's JSON besides the session's tokens (DesignSession.tokens, kept beside them): the
# wizard provider signing in, its pending sign-in (until the callback), what the source step shows
# of the session, the owner, the clicked modal and how far its update got.
PROVIDER = "provider"
PENDING = "pending"
USERNAME = "username"
CHOICES = "choices"
USER_ID = "user_id"
VIEW_ID = "view_id"
MODAL = "modal"
WAITING = "waiting"  # the callback's work is done, the click has not named the modal yet
SHOWN = "shown"  # the modal was (or is being) updated
_OWN_KEYS = frozenset({PROVIDER, PENDING, USERNAME, CHOICES, USER_ID, VIEW_ID, MODAL})


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """What the callback page tells the browser; ``load`` continues the wizard when signed in."""

    page: str
    draft_id: str = ""
    view_id: str = ""  # the modal to update; empty after a callback: see SignIns.finished
    load: SourceLoad | None = None
    problem: str = ""  # shown on the source step (denied consent, a refused code)
    state: str = ""  # the sign-in's row, whose click names the modal


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; every stored one is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A finished sign-in of a draft (what the source step may show: never a token)."""

    username: str
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) listed for the user
    hint: str = ""  # what to do next


def _sign_in_of(provider_key: str) -> DesignSignIn | None:
    try:
        return design_sign_in(get_provider(provider_key))
    except ProviderError:  # a key no provider has (any more)
        return None


def callback_families() -> list[str]:
    """The :attr:`DesignSignIn.family` of every registered provider that signs in: the callback
    routes (see bot/oauth.py)."""
    return sorted({s.family for p in all_providers() if (s := design_sign_in(p)) is not None})


class SignIns:
    """Design-time sign-ins of the wizard, through each provider's :class:`DesignSignIn`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def _box(self) -> SecretBox | None:
        connections = self.services.connections
        return connections.box if connections is not None else None

    @property
    def _base_url(self) -> str:
        connections = self.services.connections
        return connections.base_url if connections is not None else ""

    def available(self, provider_key: str) -> bool:
        """Whether the source step can offer signing in: a client app, secret keys and a public URL."""
        sign_in = _sign_in_of(provider_key)
        return sign_in is not None and self._box is not None and bool(self._base_url) and sign_in.configured()

    async def start(self, draft: DraftCopy, state: WizardState) -> str | None:
        """A fresh authorize URL for the draft's owner, its state and verifier kept server-side;
        ProviderError when the source step's choices of where to sign in are not usable."""
        box, sign_in = self._box, _sign_in_of(state.provider)
        if not self.available(state.provider) or box is None or sign_in is None:
            return None
        callback_url = self._base_url.rstrip("/") + callback_path(sign_in.family)
        started = await sign_in.start(state.source.options, callback_url)
        async with self.services.units.writing() as session:
            # Expired rows of anyone go on the way: they can only be refused.
            await session.execute(delete(OAuthState).where(OAuthState.expires_at < utcnow()))
            session.add(
                OAuthState(
                    state=started.state,
                    provider=sign_in.family,
                    user_id=draft.owner_user_id,
                    draft_id=draft.id,
                    code_verifier=box.encrypt_json({PROVIDER: state.provider, PENDING: started.pending}),
                    expires_at=utcnow() + SIGN_IN_TTL,
                )
            )
        return started.url

    async def clicked(self, state_value: str, user_id: str, view_id: str) -> str:
        """The owner pressed the button in modal ``view_id``: the id of the draft whose modal to
        update now when the callback's work is done already, else "" (the callback will, or this
        is a repeated click)."""
        box = self._box
        if box is None or not state_value:
            return ""
        async with self.services.units.writing() as session:
            row = await _locked(session, state_value)
            if row is None or row.user_id != user_id or row.draft_id is None:
                return ""
            kept = box.decrypt_json(row.code_verifier)
            if kept.get(VIEW_ID):
                return ""  # Slack's retry of the click, or a second click of the same button
            late = kept.get(MODAL) == WAITING
            row.code_verifier = box.encrypt_json(
                {**kept, VIEW_ID: view_id, **({MODAL: SHOWN} if late else {})}
            )
            return row.draft_id if late else ""

    async def finished(self, state_value: str) -> str:
        """The callback's work for the sign-in is done (tokens kept, the draft changed): the modal
        to update now when the click named it already, else "" (the click will)."""
        box = self._box
        if box is None or not state_value:
            return ""
        async with self.services.units.writing() as session:
            row = await _locked(session, state_value)
            if row is None:
                return ""
            kept = box.decrypt_json(row.code_verifier)
            if kept.get(MODAL):
                return ""
            view_id = str(kept.get(VIEW_ID) or "")
            row.code_verifier = box.encrypt_json({**kept, MODAL: SHOWN if view_id else WAITING})
            return view_id

    async def callback(self, family: str, params: Mapping[str, str]) -> CallbackResult:
        """Check the callback's ``state`` first (a forged one learns and changes nothing), then
        trade the code for tokens and keep them server-side."""
        box = self._box
        state_value = params.get("state") or ""
        if box is None or not state_value:
            return CallbackResult(FORGED)
        async with self.services.units.writing() as session:
            row = await _locked(session, state_value)
            if row is None or row.provider != family or row.draft_id is None:
                return CallbackResult(FORGED)
            pending = box.decrypt_json(row.code_verifier)
            if _aware(row.expires_at) < utcnow() or not _pending(pending):
                return CallbackResult(FORGED)
            draft_id = row.draft_id
            # Used once, whatever happens next; a click's modal, if noted already, stays.
            row.code_verifier = box.encrypt_json({VIEW_ID: str(pending.get(VIEW_ID) or "")})
        sign_in = _sign_in_of(str(pending.get(PROVIDER) or ""))
        if sign_in is None or sign_in.family != family:
            return CallbackResult(FORGED)
        try:
            done = await sign_in.complete(pending[PENDING], state_value, params)
        except ProviderError as error:
            denied = params.get("error") in ("access_denied", "consent_required")
            if denied:
                page = f"{sign_in.title} access was not allowed: {DENIED}."
                problem = f"{sign_in.title} sign-in failed: {DENIED}. Sign in again and allow access."
            else:
                page = problem = f"{sign_in.title} sign-in failed: {error}."
            return CallbackResult(page + " Go back to Slack.", draft_id, problem=problem, state=state_value)
        async with self.services.units.writing() as session:
            # One sign-in per draft: the newest replaces the others (their tokens go with them).
            await session.execute(
                delete(OAuthState).where(OAuthState.draft_id == draft_id, OAuthState.state != state_value)
            )
            row = await _locked(session, state_value)
            if row is not None:
                noted = box.decrypt_json(row.code_verifier)  # the click's modal, if it came meanwhile
                row.code_verifier = box.encrypt_json(
                    {
                        **noted,
                        **done.tokens,
                        USER_ID: row.user_id,
                        PROVIDER: pending[PROVIDER],
                        USERNAME: done.username,
                        CHOICES: [list(choice) for choice in done.choices],
                    }
                )
                row.expires_at = utcnow() + SIGNED_IN_TTL
        load = SourceLoad(done.read_now) if done.read_now is not None else None
        return CallbackResult(sign_in.done_page, draft_id, load=load, state=state_value)

    async def _signed_in_row(self, draft_id: str) -> tuple[str, dict[str, Any]] | None:
        """(state, kept JSON) of the draft's finished sign-in."""
        box = self._box
        if box is None:
            return None
        async with self.services.units.reading() as session:
            rows = await session.scalars(
                select(OAuthState)
                .where(OAuthState.draft_id == draft_id)
                .order_by(OAuthState.created_at.desc())
            )
            for row in rows:
                if _aware(row.expires_at) < utcnow():
                    continue
                kept = box.decrypt_json(row.code_verifier)
                if kept.get("access_token"):
                    return row.state, kept
        return None

    async def _end_sign_in(self, draft_id: str, error: SignInExpired) -> None:
        """Forget the draft's sign-in (its refresh token is dead): the source step offers a new one,
        the draft stays as it was."""
        log.info("the design-time sign-in of draft %s ended: %s", draft_id, error)
        async with self.services.units.writing() as session:
            await session.execute(delete(OAuthState).where(OAuthState.draft_id == draft_id))

    async def _renewed(
        self, draft_id: str, state_value: str, kept: Mapping[str, Any], *, now: bool = False
    ) -> dict[str, Any]:
        """The sign-in's tokens, renewed (and kept renewed) when they (nearly) expired or ``now``
        (the system refused them): Microsoft's last about an hour, the sign-in 12. SignInExpired,
        the sign-in ended, when renewing is refused for good."""
        tokens = _tokens(kept)
        expires_at = tokens.get("expires_at")
        if not now and (expires_at is None or float(expires_at) > time.time() + TOKEN_MARGIN_S):
            return tokens
        sign_in, box = _sign_in_of(str(kept.get(PROVIDER) or "")), self._box
        if sign_in is None or box is None:
            raise SignInExpired("the sign-in is not possible any more: choose the provider again")
        try:
            renewed = await sign_in.renew(tokens)
        except SignInExpired as error:
            await self._end_sign_in(draft_id, error)
            raise
        async with self.services.units.writing() as session:
            row = await _locked(session, state_value)
            if row is not None:
                row.code_verifier = box.encrypt_json({**box.decrypt_json(row.code_verifier), **renewed})
        return {**tokens, **renewed}

    async def search(self, draft_id: str, user_id: str, field_name: str, query: str) -> list[tuple[str, str]]:
        """(value, label) of what the searched source field ``field_name`` finds for ``query``, for
        the draft's signed-in owner; SignInRefused or SignInExpired when the sign-in cannot be used
        (renewed) any more, ProviderError when the search could not run (e.g. throttling)."""
        found = await self._signed_in_row(draft_id)
        if found is None or found[1].get(USER_ID) != user_id:
            return []
        sign_in = _sign_in_of(str(found[1].get(PROVIDER) or ""))
        if sign_in is None:
            return []
        tokens = await self._renewed(draft_id, *found)
        return (await sign_in.search(tokens, field_name, query))[:100]  # Slack shows 100 options

    async def signed_in(self, draft_id: str) -> SignedIn | None:
        """The draft's finished sign-in the source step goes on from (choosing, searching); None
        when there is none, or when its callback read the metadata already: showing the step again
        then offers a new sign-in, which serves a fresh token."""
        found = await self._signed_in_row(draft_id)
        sign_in = _sign_in_of(str(found[1].get(PROVIDER) or "")) if found is not None else None
        if found is None or sign_in is None or sign_in.reads_at_once:
            return None
        kept = found[1]
        choices = tuple((str(value), str(label)) for value, label in kept.get(CHOICES, []))
        return SignedIn(str(kept.get(USERNAME, "")), choices, sign_in.hint)

    async def design_source(
        self, draft: DraftCopy, provider_key: str, options: Mapping[str, str], *, renew: bool = False
    ) -> MetadataSource:
        """The live source the draft's sign-in reads from (to describe the objects picked after
        the callback); ``renew``: with a new access token. SignInExpired when there is no sign-in
        any more or renewing it is refused (the sign-in ends: the source step offers a new one)."""
        sign_in = _sign_in_of(provider_key)
        if sign_in is None:
            raise SignInExpired("this provider reads no live source: give the metadata again")
        found = await self._signed_in_row(draft.id)
        tokens: dict[str, Any] | None = None
        if found is not None:
            tokens = await self._renewed(draft.id, *found, now=renew)
        return await sign_in.authorize(tokens, MetadataSource(kind="url", options=dict(options)))

    async def authorized(self, draft: DraftCopy, provider_key: str, load: SourceLoad) -> SourceLoad:
        """``load`` with the signed-in user's token for the URL the user named (Microsoft: one per
        environment)."""
        sign_in = _sign_in_of(provider_key)
        if sign_in is None or load.source.kind != "url" or load.source.password:
            return load
        found = await self._signed_in_row(draft.id)
        try:
            source = await sign_in.authorize(_tokens(found[1]) if found else None, load.source)
        except SignInExpired as error:
            await self._end_sign_in(draft.id, error)
            raise
        return replace(load, source=source)


async def _locked(session: AsyncSession, state_value: str) -> OAuthState | None:
    """The row of ``state_value`` as stored now, locked until the unit of work ends (a row lock on
    PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers)."""
    return await session.get(OAuthState, state_value, with_for_update=True, populate_existing=True)


def _pending(kept: Mapping[str, Any]) -> bool:
    return PENDING in kept


def _tokens(kept: Mapping[str, Any]) -> dict[str, Any]:
    """The session's tokens (DesignSession.tokens) of a finished sign-in's row."""
    return {key: value for key, value in kept.items() if key not in _OWN_KEYS}


def register(app: AsyncApp, services: Services) -> None:
    signins = SignIns(services)

    async def suggestions(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        view = body.get("view") or {}
        draft_id = str(view.get("private_metadata", ""))
        field_name, query = str(body.get("action_id", "")), str(body.get("value", ""))
        try:
            found = await signins.search(draft_id, str(context.user_id), field_name, query)
        except (SignInRefused, SignInExpired) as error:
            await ack(options=[])
            # handlers.wizard imports this module: the wizard shows the source step again, with a
            # fresh sign-in button and why
            from handlers.wizard import Wizard

            expired = CallbackResult("", draft_id, str(view.get("id", "")), problem=str(error))
            services.tasks.spawn(Wizard(services).signed_in(client, expired), name="wizard-sign-in-expired")
            return
        except ProviderError as error:
            # An options answer has no place for an error: the reason is the only option shown.
            log.info("searching for the source field %s failed: %s", field_name, error)
            await ack(options=[option(str(error), SEARCH_FAILED)])
            return
        await ack(options=[option(label, value) for value, label in found])

    # The source fields searched once signed in: Slack names the field as the suggestion's action_id.
    searched = sorted({f.name for p in all_providers() for f in p.source_fields() if f.search})
    if searched:
        app.options(re.compile("^(" + "|".join(map(re.escape, searched)) + ")$"))(suggestions)

    async def note_click(client: AsyncWebClient, state_value: str, user_id: str, view_id: str) -> None:
        draft_id = await signins.clicked(state_value, user_id, view_id)
        if draft_id:
            from handlers.wizard import Wizard  # see suggestions

            await Wizard(services).show(client, draft_id, view_id)

    @app.action(SIGN_IN_ACTION)
    async def sign_in_clicked(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        view = body.get("view") or {}
        if view.get("id"):
            services.tasks.spawn(
                note_click(client, str(action.get("value", "")), str(context.user_id), str(view["id"])),
                name="wizard-sign-in-clicked",
            )
