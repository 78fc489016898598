"""Parsed catalogs of wizard drafts: in memory (LRU) for speed, in the database for every replica.

The objects step answers a ``block_suggestion`` per keystroke, within Slack's 3 s and ideally in
a few milliseconds, so each cached catalog carries a lowercase search index built once. A restart,
or another replica behind the load balancer, reads the catalog back from
:class:`storage.CatalogCache`; concurrent misses for the same draft share one load.

A draft's catalog is replaced when its metadata is read again, maybe on another replica, so each
catalog has a digest (the sha256 of its stored form) that the draft records
(:attr:`~handlers.wizard_state.CatalogSummary.digest`): a cached catalog whose digest is not the
draft's is read again, never answered from.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.units import UnitsOfWork
from providers.model import Catalog, ObjectDef, catalog_from_dict, catalog_to_dict
from storage import CatalogCache, Drafts

DEFAULT_CAPACITY = 64
MAX_MATCHES = 100  # Slack shows "no result" for an options answer over 100


def writable(obj: ObjectDef) -> bool:
    """Whether the system lets anyone change the object's records at all."""
    capabilities = obj.capabilities
    return capabilities.creatable or capabilities.updatable or capabilities.deletable


@dataclass(frozen=True, slots=True)
class _Entry:
    obj: ObjectDef
    name: str  # lowercase
    label: str  # lowercase
    words: tuple[str, ...]  # lowercase words of name and label, for "starts a word" matches


def _words(text: str) -> list[str]:
    found: list[str] = []
    current = ""
    previous = ""
    for char in text:
        boundary = not char.isalnum() or (char.isupper() and previous.islower())
        if boundary and current:
            found.append(current.lower())
            current = ""
        if char.isalnum():
            current += char
        previous = char
    if current:
        found.append(current.lower())
    return found


class ObjectIndex:
    """A catalog with a precomputed lowercase index over object names and labels."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._by_name = {obj.name: obj for obj in catalog.objects}
        self._entries = tuple(
            _Entry(
                obj,
                obj.name.lower(),
                (obj.label or obj.name).lower(),
                tuple(dict.fromkeys(_words(obj.name) + _words(obj.label))),
            )
            for obj in catalog.objects
        )

    def get(self, name: str) -> ObjectDef | None:
        return self._by_name.get(name)

    def labels(self, names: Sequence[str]) -> dict[str, str]:
        return {name: self._by_name[name].label for name in names if name in self._by_name}

    def search(self, query: str, limit: int = MAX_MATCHES) -> list[ObjectDef]:
        """Objects whose name or label holds ``query`` (any case): those starting with it first, then
        those with a word starting with it, then the rest; catalog order within each group."""
        needle = query.strip().lower()
        if not needle:
            return [entry.obj for entry in self._entries[:limit]]
        starts: list[ObjectDef] = []
        word_starts: list[ObjectDef] = []
        inside: list[ObjectDef] = []
        for entry in self._entries:
            if entry.name.startswith(needle) or entry.label.startswith(needle):
                starts.append(entry.obj)
            elif needle in entry.name or needle in entry.label:
                if any(word.startswith(needle) for word in entry.words):
                    word_starts.append(entry.obj)
                else:
                    inside.append(entry.obj)
            if len(starts) >= limit:
                break
        return (starts + word_starts + inside)[:limit]


@dataclass(frozen=True, slots=True)
class DraftCatalog:
    """A draft's catalog and who may look at it (the owner never changes, so it is cached too)."""

    owner_user_id: str
    team_id: str
    index: ObjectIndex
    digest: str  # sha256 of the stored catalog: which reading of the draft's metadata this is


def _encode(catalog: Catalog) -> tuple[bytes, str]:
    data = json.dumps(catalog_to_dict(catalog), separators=(",", ":")).encode("utf-8")
    return data, hashlib.sha256(data).hexdigest()


def _decode(data: bytes) -> tuple[Catalog, str]:
    return catalog_from_dict(json.loads(data)), hashlib.sha256(data).hexdigest()


class CatalogStore:
    """Catalogs per draft id: a small LRU in front of :class:`storage.CatalogCache`."""

    def __init__(self, units: UnitsOfWork, capacity: int = DEFAULT_CAPACITY) -> None:
        self.units = units
        self.capacity = capacity
        self._cached: OrderedDict[str, DraftCatalog] = OrderedDict()
        self._loading: dict[str, asyncio.Future[DraftCatalog | None]] = {}

    def cached(self, draft_id: str) -> DraftCatalog | None:
        """The in-memory entry only: no I/O, for the hot path of option searches."""
        found = self._cached.get(draft_id)
        if found is not None:
            self._cached.move_to_end(draft_id)
        return found

    async def get(self, draft_id: str, digest: str = "") -> DraftCatalog | None:
        """The draft's catalog, loaded from the database on a miss or when the cached one is not
        ``digest`` (the one the draft was given, maybe by another replica); None when there is none.
        """
        found = self.cached(draft_id)
        if found is not None and (not digest or found.digest == digest):
            return found
        pending = self._loading.get(draft_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[DraftCatalog | None] = asyncio.get_running_loop().create_future()
        self._loading[draft_id] = future
        try:
            loaded = await self._load(draft_id)
            future.set_result(loaded)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # marks it retrieved when nobody else waits for it
            raise
        finally:
            del self._loading[draft_id]
        return loaded

    async def _load(self, draft_id: str) -> DraftCatalog | None:
        async with self.units.reading() as session:
            draft = await Drafts(session).get(draft_id)
            data = await CatalogCache(session).get(draft_id) if draft is not None else None
        if draft is None or data is None:
            return None
        # Decoding a large catalog (a few MB of JSON) takes a fraction of a second.
        catalog, digest = await asyncio.to_thread(_decode, data)
        return self._remember(draft_id, draft.owner_user_id, draft.team_id, catalog, digest)

    async def put(self, draft_id: str, owner_user_id: str, team_id: str, catalog: Catalog) -> DraftCatalog:
        """Keep ``catalog`` for the draft, replacing what was there."""
        data, digest = await asyncio.to_thread(_encode, catalog)
        async with self.units.writing() as session:
            await CatalogCache(session).put(draft_id, data)
        return self._remember(draft_id, owner_user_id, team_id, catalog, digest)

    def forget(self, draft_id: str) -> None:
        self._cached.pop(draft_id, None)

    def _remember(
        self, draft_id: str, owner_user_id: str, team_id: str, catalog: Catalog, digest: str
    ) -> DraftCatalog:
        entry = DraftCatalog(owner_user_id, team_id, ObjectIndex(catalog), digest)
        self._cached[draft_id] = entry
        self._cached.move_to_end(draft_id)
        while len(self._cached) > self.capacity:
            self._cached.popitem(last=False)
        return entry
