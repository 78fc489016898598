"""What each wizard step does with what the user entered: read ``view.state.values``, validate, and
change the :class:`WizardState`. Pure functions, so every rule is testable without Slack.

Validation happens here, in the ack path, so problems show under the field they are about
(``response_action: errors``, a dict of block_id -> message). Nothing here does I/O; checks that
need the database (is the module name taken?) are made by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from generator.errors import GenerationError
from generator.names import suggest_module_name, validate_module_name
from generator.selection import select
from generator.spec import IntegrationSpec, ObjectSelection, SourceRef
from handlers.catalogs import ObjectIndex, writable
from handlers.customize import CustomizeError, parse_customizations
from handlers.views.wizard import OBJECTS_RO, OBJECTS_RW, SEARCH_FAILED
from handlers.wizard_state import STEPS, CatalogSummary, SettingsState, WizardState
from providers.base import MetadataSource, Provider, ProviderError, SourceField, get_provider
from providers.model import Catalog, ObjectDef

Values = Mapping[str, Mapping[str, Any]]
Errors = dict[str, str]

# Any valid name will do: the objects step checks the selection before a module name is chosen.
_PLACEHOLDER_MODULE = "integration_draft"
MAX_PER_LIST = 100
_EMOJI = re.compile(r"^:[a-z0-9_+'-]{1,60}:$")


def _entry(values: Values, block_id: str, action_id: str) -> Mapping[str, Any]:
    return values.get(block_id, {}).get(action_id) or {}


def text_value(values: Values, block_id: str, action_id: str | None = None) -> str:
    value = _entry(values, block_id, action_id or block_id).get("value")
    return value.strip() if isinstance(value, str) else ""


def selected_value(values: Values, block_id: str, action_id: str | None = None) -> str:
    chosen = _entry(values, block_id, action_id or block_id).get("selected_option") or {}
    return str(chosen.get("value", ""))


def selected_values(values: Values, block_id: str, action_id: str | None = None) -> list[str]:
    chosen = _entry(values, block_id, action_id or block_id).get("selected_options") or []
    return list(dict.fromkeys(str(option.get("value", "")) for option in chosen if option.get("value")))


def files_value(values: Values, block_id: str, action_id: str | None = None) -> list[Mapping[str, Any]]:
    return list(_entry(values, block_id, action_id or block_id).get("files") or [])


def summary_of(catalog: Catalog) -> CatalogSummary:
    version = str(catalog.runtime.get("odata_version", ""))
    return CatalogSummary(
        service_name=catalog.service_name,
        title=catalog.title,
        object_count=len(catalog.objects),
        sha256=catalog.source_sha256,
        protocol=f"OData {version}" if version else catalog.provider,
    )


def implemented_provider(state: WizardState) -> Provider | None:
    if not state.provider:
        return None
    try:
        provider = get_provider(state.provider)
    except ProviderError:
        return None
    return provider if provider.implemented else None


# Provider


def submit_provider(state: WizardState, values: Values) -> Errors | None:
    key = selected_value(values, "provider")
    try:
        provider = get_provider(key)
    except ProviderError:
        return {"provider": "Choose the system the integration talks to."}
    if not provider.implemented:
        return {
            "provider": f"{provider.title} is not available yet in this installation of Integration "
            "Builder; choose another system."
        }
    if key != state.provider:
        # Another system: nothing chosen for the previous one applies.
        fresh = WizardState(provider=key, settings=state.settings)
        state.source, state.catalog = fresh.source, None
        state.read_write, state.read_only, state.made_read_only = [], [], []
        state.customizations = ""
    state.provider = key
    state.step = "source"
    return None


# Source


@dataclass(frozen=True, slots=True)
class SlackFile:
    """A file the user picked in the source step's file_input; downloaded after the ack."""

    name: str
    url: str
    size: int


@dataclass(frozen=True, slots=True)
class SourceLoad:
    """Read the metadata after the ack. Holds the password only until the fetch: never stored."""

    source: MetadataSource
    file: SlackFile | None = None


@dataclass(frozen=True, slots=True)
class KeepCatalog:
    """The user pressed Next on an unchanged source: keep the catalog loaded before."""


SourceOutcome = Errors | SourceLoad | KeepCatalog


def _fields_by_kind(fields: Sequence[SourceField], kind: str) -> list[SourceField]:
    return [f for f in fields if f.kind == kind]


def _block(source_field: SourceField) -> str:
    return f"source_{source_field.name}"


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "This is not a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Give an http:// or https:// URL, e.g. https://host:44300/sap/opu/odata/sap/SERVICE/"
    if parts.username or parts.password:
        return "Put the user and password in their own fields, not in the URL."
    if port == 0:
        return "This is not a valid URL."
    return None


def submit_source(
    state: WizardState,
    values: Values,
    fields: Sequence[SourceField],
    *,
    max_file_bytes: int,
    slack_api_url: str,
) -> SourceOutcome:
    """Check the source step in the ack path; what to load (or keep) when it is valid.

    Fields are read by kind, so any provider's form works: ``url``, ``file`` and ``multiline``
    are the three ways to give metadata (exactly one), ``text`` is the user and ``password`` the
    password for the URL, ``choice`` fields become source options.
    """
    sign_in = [f for f in fields if f.sign_in]
    fields = [f for f in fields if not f.sign_in]
    urls = [(f, text_value(values, _block(f), f.name)) for f in _fields_by_kind(fields, "url")]
    files = [(f, files_value(values, _block(f), f.name)) for f in _fields_by_kind(fields, "file")]
    texts = [(f, text_value(values, _block(f), f.name)) for f in _fields_by_kind(fields, "multiline")]
    user = next((text_value(values, _block(f), f.name) for f in _fields_by_kind(fields, "text")), "")
    password = next((text_value(values, _block(f), f.name) for f in _fields_by_kind(fields, "password")), "")
    options = {
        f.name: chosen
        for f in _fields_by_kind(fields, "choice")
        if (chosen := selected_value(values, _block(f), f.name)) and chosen != "auto"
    }
    for f in _fields_by_kind(fields, "choice"):
        if options.get(f.name) == SEARCH_FAILED:
            return {_block(f): "That search did not run: search again and pick one of its results."}
    options.update(_sign_in_options(sign_in, values))
    # A choice listed after signing in (a Dataverse environment, a SharePoint site) names the URL to read.
    listed = [
        (f, options.pop(f.name))
        for f in _fields_by_kind(fields, "choice")
        if options.get(f.name, "").startswith(("https://", "http://"))
    ]
    if listed and not any(value for _, value in urls):
        urls = listed[:1]
    given = [(f, value) for f, value in (*urls, *files, *texts) if value]
    if len(given) > 1:
        names = " or ".join(f.label.lower() for f, _ in given)
        return {_block(f): f"Give only one source: the {names}." for f, _ in given[1:]}
    unchanged = state.catalog is not None and options == state.source.options
    if not given:
        # A URL source with no URL typed was read by signing in (the callback loads it).
        signed_in = state.source.kind == "url" and not state.source.url
        if unchanged and (state.source.kind in ("file", "text") or signed_in):
            return KeepCatalog()
        first = next(iter((*urls, *files, *texts)), None)
        if first is None:
            return {}
        return {_block(first[0]): "Give a metadata URL, upload a file or paste the metadata."}
    source_field, value = given[0]
    kept = state.source
    if source_field.kind in ("url", "choice"):  # a choice here is a listed URL (see above)
        assert isinstance(value, str)
        problem = _url_problem(value)
        if problem:
            return {_block(source_field): problem}
        if unchanged and kept.kind == "url" and value == kept.url and user == kept.user and not password:
            return KeepCatalog()
        state.source.url, state.source.user = value, user
        return SourceLoad(
            MetadataSource(
                "url", location=value, user=user or None, password=password or None, options=options
            )
        )
    if source_field.kind == "multiline":
        assert isinstance(value, str)
        if unchanged and kept.kind == "text" and value == kept.text:
            return KeepCatalog()
        state.source.text = value
        return SourceLoad(
            MetadataSource("text", location="pasted metadata", data=value.encode(), options=options)
        )
    assert isinstance(value, list)
    picked = value[0]
    size = int(picked.get("size") or 0)
    url = str(picked.get("url_private_download") or picked.get("url_private") or "")
    name = str(picked.get("name") or picked.get("title") or "metadata")
    if size > max_file_bytes:
        return {_block(source_field): f"{name} is larger than {max_file_bytes // (1024 * 1024)} MB."}
    if not _from_slack(url, slack_api_url):
        return {_block(source_field): "Slack did not give a download link for this file; upload it again."}
    return SourceLoad(
        MetadataSource("file", location=name, options=options), file=SlackFile(name=name, url=url, size=size)
    )


def _sign_in_options(fields: Sequence[SourceField], values: Values) -> dict[str, str]:
    """What the fields saying where to sign in hold (see ``SourceField.sign_in``)."""
    read = {
        f.name: (selected_value if f.kind == "choice" else text_value)(values, _block(f), f.name)
        for f in fields
    }
    return {name: value.strip() for name, value in read.items() if value.strip()}


def _from_slack(url: str, slack_api_url: str) -> bool:
    """Files are fetched with the bot token, so only from Slack itself: the scheme and port of its
    Web API, on the API's host or a subdomain of it (files.slack.com for slack.com)."""
    try:
        link, api = urlsplit(url), urlsplit(slack_api_url)
        link_port, api_port = link.port, api.port
    except ValueError:
        return False
    defaults = {"http": 80, "https": 443}
    host, api_host = (link.hostname or "").lower(), (api.hostname or "").lower()
    return (
        link.scheme == api.scheme
        and (link_port or defaults.get(link.scheme)) == (api_port or defaults.get(api.scheme))
        and bool(host)
        and (host == api_host or host.endswith("." + api_host))
    )


def loaded(state: WizardState, load: SourceLoad, catalog: Catalog, digest: str) -> None:
    """The metadata of ``load`` was read (``catalog``, kept with ``digest``): remember where from,
    and go on to the objects."""
    source = state.source
    source.kind = load.source.kind
    source.options = dict(load.source.options)
    source.error = ""
    if load.file is not None:
        source.file_name = load.file.name
    if source.kind != "url":
        source.url = source.user = ""
    if source.kind != "text":
        source.text = ""
    state.catalog = replace(summary_of(catalog), digest=digest)
    known = set(catalog.object_names())
    state.read_write = [name for name in state.read_write if name in known]
    state.read_only = [name for name in state.read_only if name in known]
    state.made_read_only = [name for name in state.made_read_only if name in known]
    state.step = "objects"


# Objects


@dataclass(frozen=True, slots=True)
class ObjectsChoice:
    """What the objects step holds: the chosen objects and the customization lines."""

    read_write: list[str]
    read_only: list[str]
    customizations: str

    @property
    def names(self) -> list[str]:
        return [*self.read_write, *self.read_only]


def read_objects(values: Values) -> ObjectsChoice:
    return ObjectsChoice(
        read_write=selected_values(values, OBJECTS_RW),
        read_only=selected_values(values, OBJECTS_RO),
        customizations=_entry(values, "customize", "customize").get("value") or "",
    )


def check_object_names(choice: ObjectsChoice, index: ObjectIndex) -> Errors:
    """The checks of the objects step that need only the objects' names (outlined ones too)."""
    errors: Errors = {}
    for block_id, names in ((OBJECTS_RW, choice.read_write), (OBJECTS_RO, choice.read_only)):
        unknown = [name for name in names if index.get(name) is None]
        if len(names) > MAX_PER_LIST:
            # Slack shows at most 100 chosen options again when the user comes back to this step.
            errors[block_id] = (
                f"Choose at most {MAX_PER_LIST} objects here; make a second integration for more."
            )
        elif unknown:
            errors[block_id] = (
                f"Not in the metadata: {', '.join(unknown[:5])}. Search again and pick from the list."
            )
    both = [name for name in choice.read_only if name in choice.read_write]
    if both and OBJECTS_RO not in errors:
        errors[OBJECTS_RO] = f"Chosen in both lists: {', '.join(both[:5])}. Keep each object in one list."
    if not choice.read_write and not choice.read_only:
        errors[OBJECTS_RW] = "Choose at least one object."
    return errors


def choose_objects(state: WizardState, choice: ObjectsChoice, index: ObjectIndex) -> Errors | None:
    """Check the customizations against the (described) objects, then go on to the settings."""
    chosen = replace(
        state, read_write=choice.read_write, read_only=choice.read_only, customizations=choice.customizations
    )
    try:
        build_spec(chosen, index, module_name=_PLACEHOLDER_MODULE)
    except (CustomizeError, GenerationError) as error:
        return {"customize": _sentence(str(error))}
    state.read_write, state.read_only = choice.read_write, choice.read_only
    state.customizations = choice.customizations
    state.made_read_only = [name for name in choice.read_write if not writable(_object(index, name))]
    state.step = "settings"
    return None


def submit_objects(state: WizardState, values: Values, index: ObjectIndex) -> Errors | None:
    choice = read_objects(values)
    return check_object_names(choice, index) or choose_objects(state, choice, index)


def _object(index: ObjectIndex, name: str) -> ObjectDef:
    obj = index.get(name)
    assert obj is not None, name
    return obj


def build_spec(state: WizardState, index: ObjectIndex, *, module_name: str | None = None) -> IntegrationSpec:
    """The integration spec the wizard's state describes, checked against the catalog.

    Raises :class:`CustomizeError` for a bad customization line and :class:`GenerationError`
    for anything else the generator would refuse.
    """
    chosen = state.selected_objects
    customizations = parse_customizations(state.customizations, chosen, index.get)
    objects: list[ObjectSelection] = []
    for name in chosen:
        customization = customizations.get(name)
        access_writable = name in state.read_write and writable(_object(index, name))
        objects.append(
            ObjectSelection(
                name=name,
                access="read-write" if access_writable else "read-only",
                attributes=customization.attributes if customization else None,
                renames=dict(customization.renames) if customization else {},
            )
        )
    settings = state.settings
    source = state.source
    spec = IntegrationSpec(
        provider=state.provider,
        application_name=settings.application_name or index.catalog.title or index.catalog.service_name,
        module_name=module_name or settings.module_name,
        objects=objects,
        source=SourceRef(
            kind="text" if source.kind == "text" else "file" if source.kind == "file" else "url",
            location={"url": source.url, "file": source.file_name}.get(source.kind, "pasted metadata"),
            sha256=index.catalog.source_sha256,
            options=dict(source.options),
        ),
        description=settings.description,
        icon=settings.icon,
        open=settings.open,
    )
    select(index.catalog, spec)
    return spec


def suggest_settings(state: WizardState, taken: set[str]) -> None:
    """Fill in what the settings step can guess from the catalog, where the user typed nothing."""
    settings = state.settings
    catalog = state.catalog
    if catalog is None:
        return
    if not settings.application_name:
        settings.application_name = (catalog.title or catalog.service_name)[:100]
    if not settings.module_name:
        base = suggest_module_name(catalog.service_name or catalog.title)
        candidate, counter = base, 2
        while candidate in taken:
            candidate, counter = f"{base}_{counter}", counter + 1
        settings.module_name = candidate


def module_name_candidates(state: WizardState) -> set[str]:
    """Names :func:`suggest_settings` may try, so the caller can look up which are taken."""
    catalog = state.catalog
    if catalog is None or state.settings.module_name:
        return set()
    base = suggest_module_name(catalog.service_name or catalog.title)
    return {base, *(f"{base}_{n}" for n in range(2, 10))}


# Settings


def read_settings(values: Values) -> SettingsState:
    return SettingsState(
        application_name=text_value(values, "application_name"),
        module_name=text_value(values, "module_name"),
        description=text_value(values, "description"),
        icon=text_value(values, "icon"),
        open=bool(selected_values(values, "open")),
    )


def submit_settings(state: WizardState, values: Values, *, reserved: Sequence[str] = ()) -> Errors | None:
    """Check the settings; whether the module name is taken is checked by the caller (database)."""
    settings = read_settings(values)
    errors: Errors = {}
    if not settings.application_name:
        errors["application_name"] = "Give the application a name."
    try:
        validate_module_name(settings.module_name, reserved=reserved)
    except GenerationError as error:
        errors["module_name"] = _sentence(str(error))
    if settings.icon and settings.icon.isascii() and not _EMOJI.match(settings.icon):
        errors["icon"] = "Use an emoji such as :package: (or leave it empty)."
    if errors:
        return errors
    state.settings = settings
    state.step = "review"
    return None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# Back


def keep_typed(step: str, state: WizardState, values: Values, fields: Sequence[SourceField] = ()) -> None:
    """Keep what the user typed on ``step`` without checking it (Back must never lose input).

    Secrets (passwords) and files are not kept: they are never stored.
    """
    if step == "provider":
        chosen = selected_value(values, "provider")
        if chosen and chosen != state.provider:
            submit_provider(state, values)
    elif step == "source":
        signing_in = [f for f in fields if f.sign_in]
        for f in signing_in:
            state.source.options.pop(f.name, None)
        state.source.options.update(_sign_in_options(signing_in, values))
        for f in fields:
            if f.sign_in:
                continue
            if f.kind == "url":
                state.source.url = text_value(values, _block(f), f.name)
            elif f.kind == "text":
                state.source.user = text_value(values, _block(f), f.name)
            elif f.kind == "multiline":
                state.source.text = text_value(values, _block(f), f.name)
    elif step == "objects":
        choice = read_objects(values)
        state.read_write, state.read_only = choice.read_write, choice.read_only
        state.customizations = choice.customizations
    elif step == "settings":
        state.settings = read_settings(values)


def back_target(current: str, requested: str, state: WizardState) -> str:
    """The step Back (or Change) really goes to: an earlier step, never one whose input is missing."""
    if requested not in STEPS or STEPS.index(requested) >= STEPS.index(current):
        return current
    if requested in ("objects", "settings") and state.catalog is None:
        return "source"
    return requested
