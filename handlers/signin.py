"""Signing in to the external system from the wizard's source step (design-time authorization).

The source step shows a URL button to the provider's authorize page. What the callback needs to
finish (the PKCE verifier, the login host, the Slack view to update) stays in an ``oauth_states``
row keyed by the ``state`` the URL carries, encrypted with the :class:`SecretBox`, bound to the
draft and its owner and good for :data:`SIGN_IN_TTL`. The tokens the callback gets replace it
there, encrypted too: they never reach the draft's JSON, a view, a message or a log. A row is used
once, so a replayed callback changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from sqlalchemy import delete

from handlers.drafts import DraftCopy
from handlers.services import Services
from handlers.views.wizard import SIGN_IN_ACTION
from handlers.wizard_state import WizardState
from handlers.wizard_steps import SourceLoad
from providers import salesforce
from providers.base import MetadataSource
from storage import SecretBox
from storage.models import OAuthState, utcnow

log = logging.getLogger(__name__)

SIGN_IN_TTL = timedelta(minutes=10)
FORGED = (
    "This sign-in link is not valid (forged, already used or older than 10 minutes). Nothing was "
    "changed: go back to Slack and press the sign-in button of the wizard again."
)
DENIED = "consent was denied"


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """What the callback page tells the browser; ``load`` continues the wizard when signed in."""

    page: str
    draft_id: str = ""
    view_id: str = ""
    load: SourceLoad | None = None
    problem: str = ""  # shown on the source step (denied consent, a refused code)


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; every stored one is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SignIns:
    """Design-time sign-ins of the wizard; only Salesforce is wired so far."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def _box(self) -> SecretBox | None:
        connections = self.services.connections
        return connections.box if connections is not None else None

    def available(self, provider_key: str) -> bool:
        """Whether the source step can offer signing in: a client app and secret keys exist."""
        return (
            provider_key == "salesforce"
            and self._box is not None
            and bool(self.services.connections and self.services.connections.base_url)
            and salesforce.OAuthClient.from_env() is not None
        )

    async def start(self, draft: DraftCopy, state: WizardState) -> str | None:
        """A fresh authorize URL for the draft's owner, its state and verifier kept server-side."""
        box, client = self._box, salesforce.OAuthClient.from_env()
        connections = self.services.connections
        if not self.available(state.provider) or box is None or client is None or connections is None:
            return None
        login = salesforce.login_url(state.source.options.get("environment", "production"))
        request = salesforce.start_authorization(
            login, client.client_id, salesforce.callback_url(connections.base_url)
        )
        pending = {
            "login_url": request.login_url,
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "code_verifier": request.code_verifier,
            "view_id": "",
        }
        async with self.services.units.writing() as session:
            # Expired rows of anyone go on the way: they can only be refused.
            await session.execute(delete(OAuthState).where(OAuthState.expires_at < utcnow()))
            session.add(
                OAuthState(
                    state=request.state,
                    provider=state.provider,
                    user_id=draft.owner_user_id,
                    draft_id=draft.id,
                    code_verifier=box.encrypt_json(pending),
                    expires_at=utcnow() + SIGN_IN_TTL,
                )
            )
        return request.url

    async def clicked(self, state_value: str, user_id: str, view_id: str) -> None:
        """The owner pressed the button: the callback will update this modal."""
        box = self._box
        if box is None or not state_value:
            return
        async with self.services.units.writing() as session:
            row = await session.get(OAuthState, state_value)
            if row is None or row.user_id != user_id:
                return
            pending = box.decrypt_json(row.code_verifier)
            if "code_verifier" in pending:
                row.code_verifier = box.encrypt_json({**pending, "view_id": view_id})

    async def callback(self, provider_key: str, params: Mapping[str, str]) -> CallbackResult:
        """Check the callback's ``state`` first (a forged one learns and changes nothing), then
        trade the code for tokens and keep them server-side."""
        box = self._box
        client = salesforce.OAuthClient.from_env()
        state_value = params.get("state") or ""
        if box is None or client is None or not state_value:
            return CallbackResult(FORGED)
        async with self.services.units.writing() as session:
            row = await session.get(OAuthState, state_value)
            if row is None or row.provider != provider_key or row.draft_id is None:
                return CallbackResult(FORGED)
            pending = box.decrypt_json(row.code_verifier)
            if _aware(row.expires_at) < utcnow() or "code_verifier" not in pending:
                return CallbackResult(FORGED)
            draft_id, view_id = row.draft_id, str(pending.get("view_id", ""))
            request = salesforce.AuthorizationRequest(
                "",
                str(pending["login_url"]),
                str(pending["client_id"]),
                str(pending["redirect_uri"]),
                row.state,
                str(pending["code_verifier"]),
            )
            # Used once, whatever happens next.
            row.code_verifier = box.encrypt_json({"view_id": view_id})
        try:
            code = salesforce.authorization_code(params, request.state)
            tokens = await salesforce.exchange_code(request, code, client.client_secret)
        except salesforce.AuthorizationError as error:
            denied = params.get("error") == "access_denied"
            problem = (
                f"Salesforce sign-in failed: {DENIED}. Press Authorize Salesforce and choose Allow."
                if denied
                else f"{error}."
            )
            page = (
                "Salesforce access was not allowed: consent was denied."
                if denied
                else f"Salesforce sign-in failed: {error}."
            )
            return CallbackResult(page + " Go back to Slack.", draft_id, view_id, problem=problem)
        async with self.services.units.writing() as session:
            row = await session.get(OAuthState, state_value)
            if row is not None:
                row.code_verifier = box.encrypt_json(
                    {
                        "view_id": view_id,
                        "access_token": tokens.access_token,
                        "refresh_token": tokens.refresh_token or "",
                        "instance_url": tokens.instance_url,
                    }
                )
        load = SourceLoad(
            MetadataSource(kind="url", location=tokens.instance_url, password=tokens.access_token)
        )
        return CallbackResult(
            "Signed in to Salesforce. Go back to Slack: the wizard reads your objects now.",
            draft_id,
            view_id,
            load=load,
        )


def register(app: AsyncApp, services: Services) -> None:
    signins = SignIns(services)

    @app.action(SIGN_IN_ACTION)
    async def sign_in_clicked(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        view = body.get("view") or {}
        if view.get("id"):
            services.tasks.spawn(
                signins.clicked(str(action.get("value", "")), str(context.user_id), str(view["id"])),
                name="wizard-sign-in-clicked",
            )
