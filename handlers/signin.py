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
from handlers.views.wizard import SEARCH_FAILED, SIGN_IN_ACTION, SITE_SEARCH
from handlers.wizard_state import WizardState
from handlers.wizard_steps import SourceLoad
from providers import dataverse, microsoft, salesforce, sharepoint
from providers.base import MetadataSource, ProviderError, SignInExpired, SourceError
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
# Keys of a row's JSON besides the sign-in's own: the clicked modal, and how far its update got.
VIEW_ID = "view_id"
MODAL = "modal"
WAITING = "waiting"  # the callback's work is done, the click has not named the modal yet
SHOWN = "shown"  # the modal was (or is being) updated


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
    environments: tuple[tuple[str, str], ...] = ()  # (url, name) listed for the user


# The route's {provider} for each wizard provider that signs in.
FAMILIES: dict[str, str] = {
    "salesforce": "salesforce",
    "dataverse": "microsoft",
    "dynamics365": "microsoft",
    "sharepoint": "microsoft",
}


class SignIns:
    """Design-time sign-ins of the wizard: Salesforce, and Microsoft for Dataverse / Dynamics 365."""

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
        family = FAMILIES.get(provider_key)
        if family is None or self._box is None or not self._base_url:
            return False
        if family == "salesforce":
            return salesforce.OAuthClient.from_env() is not None
        return microsoft.SignInClient.from_env() is not None

    async def start(self, draft: DraftCopy, state: WizardState) -> str | None:
        """A fresh authorize URL for the draft's owner, its state and verifier kept server-side;
        ProviderError when the source step's choices of where to sign in are not usable."""
        box = self._box
        if not self.available(state.provider) or box is None:
            return None
        family = FAMILIES[state.provider]
        pending: dict[str, Any]
        if family == "salesforce":
            client = salesforce.OAuthClient.from_env()
            assert client is not None
            # A My Domain or org kind the user gave is refused here (ProviderError) before any URL.
            login = salesforce.sign_in_login_url(state.source.options)
            request = salesforce.start_authorization(
                login, client.client_id, salesforce.callback_url(self._base_url)
            )
            url, state_value = request.url, request.state
            pending = {
                "login_url": request.login_url,
                "client_id": request.client_id,
                "redirect_uri": request.redirect_uri,
                "code_verifier": request.code_verifier,
                "options": dict(state.source.options),  # the objects' source keeps them
            }
        else:
            sign_in_client = microsoft.SignInClient.from_env()
            assert sign_in_client is not None
            started = await microsoft.start_sign_in(
                sign_in_client, microsoft.callback_url(self._base_url), _design_scopes(state.provider, "")
            )
            url, state_value = started.url, started.state
            pending = {"flow": started.flow, "wizard_provider": state.provider}
        async with self.services.units.writing() as session:
            # Expired rows of anyone go on the way: they can only be refused.
            await session.execute(delete(OAuthState).where(OAuthState.expires_at < utcnow()))
            session.add(
                OAuthState(
                    state=state_value,
                    provider=family,
                    user_id=draft.owner_user_id,
                    draft_id=draft.id,
                    code_verifier=box.encrypt_json(pending),
                    expires_at=utcnow() + SIGN_IN_TTL,
                )
            )
        return url

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
        title = "Salesforce" if family == "salesforce" else "Microsoft"
        try:
            if family == "salesforce":
                kept, load = await _salesforce_tokens(pending, state_value, params)
            else:
                kept, load = await _microsoft_tokens(pending, params), None
        except (salesforce.AuthorizationError, microsoft.SignInError, ProviderError) as error:
            denied = params.get("error") in ("access_denied", "consent_required")
            if denied:
                page = f"{title} access was not allowed: {DENIED}."
                problem = f"{title} sign-in failed: {DENIED}. Sign in again and allow access."
            else:
                page = problem = f"{title} sign-in failed: {error}."
            return CallbackResult(page + " Go back to Slack.", draft_id, problem=problem, state=state_value)
        async with self.services.units.writing() as session:
            # One sign-in per draft: the newest replaces the others (their tokens go with them).
            await session.execute(
                delete(OAuthState).where(OAuthState.draft_id == draft_id, OAuthState.state != state_value)
            )
            row = await _locked(session, state_value)
            if row is not None:
                noted = box.decrypt_json(row.code_verifier)  # the click's modal, if it came meanwhile
                row.code_verifier = box.encrypt_json({**noted, "user_id": row.user_id, **kept})
                row.expires_at = utcnow() + SIGNED_IN_TTL
        if load is not None:
            return CallbackResult(
                "Signed in to Salesforce. Go back to Slack: the wizard reads your objects now.",
                draft_id,
                load=load,
                state=state_value,
            )
        return CallbackResult(
            "Signed in with Microsoft. Go back to Slack to choose the environment.",
            draft_id,
            state=state_value,
        )

    async def _signed_in_row(self, draft_id: str) -> tuple[str, dict[str, Any]] | None:
        """(state, kept tokens) of the draft's finished sign-in."""
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

    async def _tokens_of(self, draft_id: str) -> dict[str, Any] | None:
        found = await self._signed_in_row(draft_id)
        return found[1] if found is not None else None

    async def _end_sign_in(self, draft_id: str) -> None:
        """Forget the draft's sign-in (its refresh token is dead): the source step offers a new one,
        the draft stays as it was."""
        async with self.services.units.writing() as session:
            await session.execute(delete(OAuthState).where(OAuthState.draft_id == draft_id))

    async def _design_token(self, draft_id: str, state_value: str, kept: Mapping[str, Any]) -> str:
        """The kept access token, renewed with the refresh token once it (nearly) expired (Microsoft
        tokens last about an hour, the sign-in 12). SignInError when the renewal is refused."""
        if float(kept.get("expires_at") or 0) > time.time() + TOKEN_MARGIN_S:
            return str(kept["access_token"])
        box, client = self._box, microsoft.SignInClient.from_env()
        if box is None or client is None:
            raise microsoft.SignInError("Microsoft sign-in is not configured any more")
        try:
            tokens = await microsoft.refresh_sign_in(
                client,
                str(kept.get("refresh_token") or ""),
                _design_scopes(str(kept.get("wizard_provider") or ""), ""),
                tenant=str(kept.get("tenant_id") or "") or None,
            )
        except microsoft.SignInExpired:
            await self._end_sign_in(draft_id)
            raise
        async with self.services.units.writing() as session:
            row = await _locked(session, state_value)
            if row is not None:
                row.code_verifier = box.encrypt_json(
                    {**box.decrypt_json(row.code_verifier), **_renewable(tokens)}
                )
        return tokens.access_token

    async def search_sites(self, draft_id: str, user_id: str, query: str) -> list[tuple[str, str]]:
        """(url, name) of the SharePoint sites matching ``query`` for the draft's signed-in owner;
        SignInError when the sign-in expired and could not be renewed, ProviderError when the
        search could not run (e.g. Graph throttling)."""
        found = await self._signed_in_row(draft_id)
        if found is None or found[1].get("user_id") != user_id:
            return []
        token = await self._design_token(draft_id, *found)
        sites = await sharepoint.search_sites(token, query)
        return [(site.web_url, site.name) for site in sites[:100]]

    async def signed_in(self, draft_id: str) -> SignedIn | None:
        kept = await self._tokens_of(draft_id)
        if kept is None:
            return None
        environments = tuple((str(url), str(name)) for url, name in kept.get("environments", []))
        return SignedIn(str(kept.get("username", "")), environments)

    async def design_source(
        self, draft: DraftCopy, options: Mapping[str, str], *, renew: bool = False
    ) -> MetadataSource:
        """The live source the draft's Salesforce sign-in reads objects from (to describe the ones
        picked after the callback); ``renew``: with a new access token from the refresh token.
        SignInExpired when there is no sign-in any more or Salesforce refuses the renewal (the
        sign-in ends: the source step offers a new one)."""
        found = await self._signed_in_row(draft.id)
        if found is None or not found[1].get("instance_url"):
            raise SignInExpired("the Salesforce sign-in ended: press Authorize Salesforce to sign in again")
        state_value, kept = found
        token = str(kept["access_token"])
        if renew:
            client, box = salesforce.OAuthClient.from_env(), self._box
            if client is None or box is None:
                raise SignInExpired("Salesforce sign-in is not configured any more")
            try:
                tokens = await salesforce.refresh_access_token(
                    str(kept.get("login_url") or kept["instance_url"]),
                    client.client_id,
                    str(kept.get("refresh_token") or ""),
                    client.client_secret,
                )
            except salesforce.AuthorizationError as error:
                log.info("renewing the Salesforce session of draft %s failed: %s", draft.id, error)
                await self._end_sign_in(draft.id)
                raise SignInExpired(
                    "your Salesforce session ended and Salesforce refused to renew it: press "
                    "Authorize Salesforce to sign in again (your choices are kept)"
                ) from None
            token = tokens.access_token
            async with self.services.units.writing() as session:
                row = await _locked(session, state_value)
                if row is not None:
                    row.code_verifier = box.encrypt_json(
                        {**box.decrypt_json(row.code_verifier), "access_token": token}
                    )
        return MetadataSource(
            kind="url", location=str(kept["instance_url"]), password=token, options=dict(options)
        )

    async def authorized(self, draft: DraftCopy, provider_key: str, load: SourceLoad) -> SourceLoad:
        """``load`` with the signed-in user's token for its URL (Microsoft: one per environment)."""
        if FAMILIES.get(provider_key) != "microsoft" or load.source.kind != "url" or load.source.password:
            return load
        kept = await self._tokens_of(draft.id)
        client = microsoft.SignInClient.from_env()
        if kept is None or client is None:
            raise SourceError("sign in with Microsoft first: reading the environment's tables needs it")
        try:
            tokens = await microsoft.refresh_sign_in(
                client,
                str(kept["refresh_token"]),
                _design_scopes(provider_key, load.source.location),
                tenant=str(kept.get("tenant_id") or "") or None,
            )
        except microsoft.SignInExpired:
            await self._end_sign_in(draft.id)
            raise
        return replace(load, source=replace(load.source, password=tokens.access_token))


def _design_scopes(provider_key: str, url: str) -> list[str]:
    """Graph for SharePoint; for Dataverse the discovery service, or the environment at ``url``."""
    if provider_key == "sharepoint":
        return sharepoint.design_scopes()
    return dataverse.environment_scopes(url) if url else dataverse.discovery_scopes()


async def _locked(session: AsyncSession, state_value: str) -> OAuthState | None:
    """The row of ``state_value`` as stored now, locked until the unit of work ends (a row lock on
    PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers)."""
    return await session.get(OAuthState, state_value, with_for_update=True, populate_existing=True)


def _pending(kept: Mapping[str, Any]) -> bool:
    return "code_verifier" in kept or "flow" in kept


async def _salesforce_tokens(
    pending: Mapping[str, Any], state_value: str, params: Mapping[str, str]
) -> tuple[dict[str, Any], SourceLoad]:
    client = salesforce.OAuthClient.from_env()
    if client is None:
        raise ProviderError("Salesforce sign-in is not configured any more")
    request = salesforce.AuthorizationRequest(
        "",
        str(pending["login_url"]),
        str(pending["client_id"]),
        str(pending["redirect_uri"]),
        state_value,
        str(pending["code_verifier"]),
    )
    code = salesforce.authorization_code(params, request.state)
    tokens = await salesforce.exchange_code(request, code, client.client_secret)
    kept = {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token or "",
        "instance_url": tokens.instance_url,
        "login_url": request.login_url,  # where the refresh token is traded later
    }
    source = MetadataSource(
        kind="url",
        location=tokens.instance_url,
        password=tokens.access_token,
        options=dict(pending.get("options") or {}),
    )
    return kept, SourceLoad(source)


async def _microsoft_tokens(pending: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
    client = microsoft.SignInClient.from_env()
    if client is None:
        raise ProviderError("Microsoft sign-in is not configured any more")
    tokens = await microsoft.complete_sign_in(client, dict(pending["flow"]), params)
    listed: list[dataverse.DataverseEnvironment] = []
    if pending.get("wizard_provider") != "sharepoint":
        try:
            listed = await dataverse.list_environments(tokens.access_token)
        except SourceError as error:
            # Typing the environment's URL still works.
            log.info("listing the signed-in user's Dataverse environments failed: %s", error)
    return {
        **_renewable(tokens),
        "tenant_id": tokens.tenant_id,
        "username": tokens.username,
        "wizard_provider": pending.get("wizard_provider", ""),
        "environments": [[environment.url, environment.name] for environment in listed],
    }


def _renewable(tokens: microsoft.MicrosoftTokens) -> dict[str, Any]:
    """What is kept of a Microsoft token answer to use the access token and later renew it."""
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token or "",
        "expires_at": time.time() + tokens.expires_in,
    }


def register(app: AsyncApp, services: Services) -> None:
    signins = SignIns(services)

    @app.options(SITE_SEARCH)
    async def site_suggestions(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        view = body.get("view") or {}
        draft_id = str(view.get("private_metadata", ""))
        try:
            found = await signins.search_sites(draft_id, str(context.user_id), str(body.get("value", "")))
        except microsoft.SignInError as error:
            await ack(options=[])
            # handlers.wizard imports this module: the wizard shows the source step again, with a
            # fresh sign-in button and why
            from handlers.wizard import Wizard

            expired = CallbackResult("", draft_id, str(view.get("id", "")), problem=str(error))
            services.tasks.spawn(Wizard(services).signed_in(client, expired), name="wizard-sign-in-expired")
            return
        except ProviderError as error:
            # An options answer has no place for an error: the reason is the only option shown.
            log.info("searching SharePoint sites failed: %s", error)
            await ack(options=[option(str(error), SEARCH_FAILED)])
            return
        await ack(options=[option(name, url) for url, name in found])

    async def note_click(client: AsyncWebClient, state_value: str, user_id: str, view_id: str) -> None:
        draft_id = await signins.clicked(state_value, user_id, view_id)
        if draft_id:
            from handlers.wizard import Wizard  # see site_suggestions

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
