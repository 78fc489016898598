"""A Slack user walking the integration wizard, as far as the Slack client lets them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Unpack

from tests.slack import DEVELOPER, AckResponse, Delivery, Driver, FakeSlack, SlackUser, wait_for

STEP_TIMEOUT_S = 30.0  # a failure-detection limit (metadata fetches, CI machines), not a speed check


def visible_text(view: Mapping[str, Any]) -> str:
    """Every text the user sees in a view: sections, contexts, labels, hints, buttons, options."""
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
                texts.append(node["text"])
            for key, value in node.items():
                if key not in ("private_metadata", "state", "hash"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(view.get("blocks", []))
    return "\n".join(texts)


class WizardUser:
    def __init__(self, driver: Driver, fake: FakeSlack, user: SlackUser = DEVELOPER) -> None:
        self.driver = driver
        self.fake = fake
        self.user = user

    # What the user sees

    @property
    def view(self) -> dict[str, Any]:
        shown = self.fake.current_view(self.user.id)
        assert shown is not None, f"{self.user.name} has no modal open"
        return shown

    @property
    def step(self) -> str:
        """What the modal shows: a wizard step, or loading, resume, publishing, notice; "" if closed."""
        shown = self.fake.current_view(self.user.id)
        if shown is None:
            return ""
        prefix, _, step = str(shown.get("callback_id", "")).partition(":")
        return step if prefix == "ib_wizard" else ""

    @property
    def text(self) -> str:
        return visible_text(self.view)

    async def wait_step(self, step: str, timeout: float = STEP_TIMEOUT_S) -> dict[str, Any]:  # noqa: ASYNC109
        await wait_for(lambda: self.step == step, timeout, what=f"the {step} view (now: {self.step!r})")
        return self.view

    def initial_options(self, action_id: str) -> list[str]:
        for block in self.view["blocks"]:
            element = block.get("element") or {}
            if element.get("action_id") == action_id:
                return [option["value"] for option in element.get("initial_options", [])]
        raise AssertionError(f"no element {action_id!r} in the view")

    def initial_value(self, action_id: str) -> str:
        for block in self.view["blocks"]:
            element = block.get("element") or {}
            if element.get("action_id") == action_id:
                return str(element.get("initial_value", ""))
        raise AssertionError(f"no element {action_id!r} in the view")

    # What the user does

    async def start(self, **delivery: Unpack[Delivery]) -> AckResponse:
        ack = await self.driver.slash_command(self.user, "new", **delivery)
        assert ack.status == 200, ack
        return ack

    async def submit(
        self, values: Mapping[Any, Any] | None = None, **delivery: Unpack[Delivery]
    ) -> AckResponse:
        ack = await self.driver.view_submission(self.user, values=values, **delivery)
        assert ack.status == 200, ack
        return ack

    @staticmethod
    def errors(ack: AckResponse) -> dict[str, str]:
        answer = ack.json or {}
        return dict(answer.get("errors", {})) if answer.get("response_action") == "errors" else {}

    async def choose_provider(self, key: str = "sap-odata") -> AckResponse:
        await self.wait_step("provider")
        return await self.submit({"provider": key})

    async def give_source(self, **values: Any) -> AckResponse:
        """Fill the source step: metadata_url, user, password, metadata_file, metadata_text, odata_version."""
        await self.wait_step("source")
        return await self.submit(values)

    async def search(self, action_id: str, query: str = "") -> list[str]:
        ack = await self.driver.block_suggestion(self.user, action_id, query)
        assert ack.status == 200, ack
        return [option["value"] for option in json.loads(ack.text)["options"]]

    async def pick_objects(
        self,
        read_write: Iterable[str] = (),
        read_only: Iterable[str] = (),
        customize: str | None = None,
    ) -> AckResponse:
        await self.wait_step("objects")
        values: dict[Any, Any] = {}
        for action_id, names in (("objects_rw", list(read_write)), ("objects_ro", list(read_only))):
            for name in names:
                await self.search(action_id, name)
            values[action_id] = names
        if customize is not None:
            values["customize"] = customize
        return await self.submit(values)

    async def fill_settings(self, **values: Any) -> AckResponse:
        await self.wait_step("settings")
        return await self.submit(values)

    async def back(self, to: str | None = None) -> AckResponse:
        """Back (or, on the review, the Change button of step ``to``)."""
        block_id = f"review_{to}" if self.step == "review" else None
        ack = await self.driver.block_action(self.user, "wizard_back", block_id=block_id)
        assert ack.status == 200, ack
        return ack

    async def click(self, action_id: str) -> AckResponse:
        ack = await self.driver.block_action(self.user, action_id)
        assert ack.status == 200, ack
        return ack
