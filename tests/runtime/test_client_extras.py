"""The extras only OData systems have (formatted values, lookups bound through links).

Every runtime's Client and AsyncClient accept them, being the same shells; a system without them
refuses a request that uses them with a clear ConfigurationError, before anything is sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from providers.runtime import graph, salesforce
from providers.runtime.connection import BearerAuth, Connection
from providers.runtime.errors import ConfigurationError
from providers.runtime.records import FieldDescriptor, ObjectDescriptor, Record, ServiceDescriptor


@dataclass(slots=True)
class Item(Record):
    id: str | None = None
    title: str | None = None


ITEMS = ObjectDescriptor(
    name="Items",
    entity_name="Item",
    model=Item,
    fields=(
        FieldDescriptor("id", "id", "id", "string", key=True, creatable=False, updatable=False),
        FieldDescriptor("title", "Title", "text", "string"),
    ),
)
SERVICE = ServiceDescriptor("extras", "1", objects={"Items": ITEMS})
# nothing listens there: a request that got as far as sending would fail differently
CONNECTION = Connection("http://127.0.0.1:9/root/", auth=BearerAuth("token"))

FORMATTED = "does not format values"
LINKED = "sets lookups through their attributes, not links"
# method -> its arguments after the object descriptor, and what the refusal says
REQUESTS: dict[str, tuple[dict[str, Any], str]] = {
    "search": ({"formatted_values": True}, FORMATTED),
    "get": ({"key": {"id": "1"}, "formatted_values": True}, FORMATTED),
    "create": ({"record": Item(title="a"), "links": {"owner": "1"}}, LINKED),
    "update": ({"key": {"id": "1"}, "record": Item(title="a"), "links": {"owner": None}}, LINKED),
}


@pytest.mark.parametrize("module", [graph, salesforce], ids=["graph", "salesforce"])
@pytest.mark.parametrize("method", REQUESTS)
def test_systems_without_the_extras_refuse_them(module: Any, method: str) -> None:
    arguments, message = REQUESTS[method]
    with module.Client(CONNECTION, SERVICE) as client:
        with pytest.raises(ConfigurationError, match=message):
            getattr(client, method)(ITEMS, **arguments)

    async def run_async() -> None:
        async with module.AsyncClient(CONNECTION, SERVICE) as client:
            with pytest.raises(ConfigurationError, match=message):
                await getattr(client, method)(ITEMS, **arguments)

    asyncio.run(run_async())

