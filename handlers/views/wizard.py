"""The integration wizard: ONE modal whose content is replaced step by step (SLACK.md: at most
three stacked views, so a five-step wizard with Back must update in place).

Every function here is pure: wizard state (+ what providers declare) -> view dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from handlers.views.blocks import (
    Block,
    actions,
    button,
    clip,
    context,
    divider,
    escape,
    input_block,
    modal,
    option,
    plain,
    section,
    text_input,
)
from handlers.wizard_state import STEP_TITLES, STEPS, WizardState
from providers.base import Provider, SourceField


class SignedInView(Protocol):
    """What the source step shows of a finished sign-in (handlers.signin.SignedIn)."""

    @property
    def username(self) -> str: ...

    @property
    def choices(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def hint(self) -> str: ...


CALLBACK_ID = "ib_wizard"  # every view of the wizard's modal has a callback_id starting with it
TITLE = "Create integration"
BACK_ACTION = "wizard_back"  # value = the step to go to
SIGN_IN_ACTION = "wizard_sign_in"  # a URL button to the system's sign-in page; value = its state
# The value of the only option a search that could not run offers (its text says why): picking
# it is refused inline.
SEARCH_FAILED = "!search-failed"
OBJECTS_RW = "objects_rw"
OBJECTS_RO = "objects_ro"
CUSTOMIZE_HELP = (
    "One line per object. `ProductSet: ProductID, Name, Price` keeps only those attributes "
    "(keys are always kept); `ProductSet.Price = unit_price` renames an attribute in the package."
)
OPEN_HELP = (
    "An open integration can be downloaded and edited by hand. This is one-way: once published "
    "open, Integration Builder never regenerates or republishes it."
)


def callback_id(step: str) -> str:
    """The callback_id of a view showing ``step`` (or "loading", "resume", "publishing"): a submission
    names the step the user saw, so a retried or double-clicked one is told from a new one."""
    return f"{CALLBACK_ID}:{step}"


def step_of(view_callback_id: str) -> str:
    """The step (or other view) named by a wizard view's callback_id; "" for any other view."""
    prefix, colon, step = view_callback_id.partition(":")
    return step if prefix == CALLBACK_ID and colon else ""


def _progress(step: str) -> Block:
    position = STEPS.index(step) + 1
    trail = "  ›  ".join(f"*{STEP_TITLES[s]}*" if s == step else STEP_TITLES[s] for s in STEPS)
    return context(f"Step {position} of {len(STEPS)}:  {trail}")


def _wizard_modal(
    state: WizardState, draft_id: str, blocks: list[Block], submit: str | None
) -> dict[str, Any]:
    return modal(
        TITLE,
        [_progress(state.step), *blocks],
        callback_id=callback_id(state.step),
        private_metadata=draft_id,
        submit=submit,
    )


def loading_view(draft_id: str, message: str = "Loading…") -> dict[str, Any]:
    """The cheap view opened at once (a trigger_id lives 3 s); the real content follows."""
    return modal(
        TITLE,
        [section(f":hourglass_flowing_sand: {escape(message)}")],
        callback_id=callback_id("loading"),
        private_metadata=draft_id,
        close="Close",
    )


def notice_view(text: str) -> dict[str, Any]:
    """A closing word when a draft cannot go on (gone, finished, someone else's)."""
    return modal(
        TITLE, [section(escape(text))], callback_id=callback_id("notice"), private_metadata="", close="Close"
    )


def resume_view(draft_id: str, state: WizardState, updated: str) -> dict[str, Any]:
    where = STEP_TITLES.get(state.step, state.step)
    name = state.settings.application_name or (state.catalog.service_name if state.catalog else "")
    about = f" *{escape(name)}*" if name else ""
    return modal(
        TITLE,
        [
            section(
                f"You have an unfinished integration draft{about} (step *{where}*, last changed {updated})."
            ),
            actions(
                "resume",
                button("Resume", "wizard_resume", draft_id, style="primary"),
                button("Start over", "wizard_start_over", draft_id, style="danger"),
            ),
        ],
        callback_id=callback_id("resume"),
        private_metadata=draft_id,
        close="Close",
    )


def provider_step(draft_id: str, state: WizardState, providers: Sequence[Provider]) -> dict[str, Any]:
    options = [
        option(p.title, p.key, "" if p.implemented else "Not available yet in this installation")
        for p in providers
    ]
    element: dict[str, Any] = {"type": "radio_buttons", "action_id": "provider", "options": options}
    chosen = next((o for o in options if o["value"] == state.provider), None)
    if chosen:
        element["initial_option"] = chosen
    blocks = [
        section("Which system should the integration talk to?"),
        input_block("provider", "Provider", element),
    ]
    return _wizard_modal(state, draft_id, blocks, "Next")


def _source_element(source_field: SourceField, state: WizardState) -> dict[str, Any] | None:
    kind = source_field.kind
    if kind == "url":
        element: dict[str, Any] = {"type": "url_text_input", "action_id": source_field.name}
        typed = state.source.options.get(source_field.name, "") if source_field.sign_in else state.source.url
        if typed:
            element["initial_value"] = typed
        return element
    if kind == "text":
        return text_input(source_field.name, initial=state.source.user, max_length=255)
    if kind == "password":
        # Never an initial_value: a secret is not echoed back into a view.
        return text_input(source_field.name, max_length=255)
    if kind == "multiline":
        return text_input(source_field.name, initial=state.source.text, multiline=True, max_length=3000)
    if kind == "file":
        return {
            "type": "file_input",
            "action_id": source_field.name,
            "filetypes": ["xml", "edmx", "json", "txt", "zip"],
            "max_files": 1,
        }
    if kind == "choice":
        if not source_field.choices:
            return None  # filled in after signing in, which the wizard does not offer yet
        choice_options = [option(label, value) for value, label in source_field.choices]
        element = {"type": "static_select", "action_id": source_field.name, "options": choice_options}
        chosen = state.source.options.get(source_field.name, "")
        selected = next((o for o in choice_options if o["value"] == chosen), None)
        if selected:
            element["initial_option"] = selected
        return element
    return None


def source_step(
    draft_id: str,
    state: WizardState,
    provider: Provider,
    fields: Sequence[SourceField],
    *,
    sign_in_url: str | None = None,
    signed_in: SignedInView | None = None,
    sign_in_problem: str = "",
) -> dict[str, Any]:
    blocks: list[Block] = [section(f"Where does the *{escape(provider.title)}* metadata come from?")]
    if state.source.error:
        blocks.append(section(f":warning: {escape(state.source.error)}", block_id="source_error"))
    elif state.catalog:
        blocks.append(
            context(
                f"Loaded now: *{escape(state.catalog.title or state.catalog.service_name)}* from "
                f"{escape(clip(source_description(state), 200))}. Press Next without changes to keep it."
            )
        )
    for source_field in fields:
        if source_field.kind == "authorize" and signed_in is not None:
            who = f" as *{escape(signed_in.username)}*" if signed_in.username else ""
            blocks.append(context(f":white_check_mark: Signed in{who}. {signed_in.hint}"))
            continue
        if source_field.kind == "choice" and signed_in is not None and signed_in.choices:
            source_field = replace(source_field, choices=signed_in.choices)
        if source_field.search and signed_in is not None:
            # Its options are found as the user types (handlers/signin.py answers the suggestions).
            picker = {"type": "external_select", "action_id": source_field.name, "min_query_length": 0}
            blocks.append(
                input_block(f"source_{source_field.name}", source_field.label, picker, hint=source_field.hint)
            )
            continue
        if source_field.kind == "authorize" and sign_in_url:
            # The value lets the click tell the service which modal the callback updates.
            state_value = parse_qs(urlsplit(sign_in_url).query).get("state", [""])[0]
            blocks.append(
                actions(
                    "source_sign_in",
                    button(source_field.label, SIGN_IN_ACTION, state_value, style="primary", url=sign_in_url),
                )
            )
            if source_field.hint:
                blocks.append(context(escape(source_field.hint)))
            continue
        if source_field.kind == "authorize" and sign_in_problem:
            # Where to sign in is not usable yet (say, a mistyped login host): no button until it is.
            blocks.append(context(f":warning: {escape(sign_in_problem)}"))
            continue
        if source_field.kind == "authorize":
            # No dead button: signing in from the wizard needs the design-time authorization flow.
            blocks.append(
                context(
                    f"*{escape(source_field.label)}* from Slack is not available in this installation "
                    "yet: use the other fields."
                )
            )
            continue
        element = _source_element(source_field, state)
        if element is None:
            continue
        hint = source_field.hint
        if source_field.kind == "password":
            hint = (hint + " " if hint else "") + "Slack shows what you type; it is used once and not stored."
        blocks.append(
            input_block(
                f"source_{source_field.name}",
                source_field.label,
                element,
                optional=not source_field.required,
                hint=hint,
                # a new place to sign in needs a new sign-in button (see Wizard.go_back)
                dispatch_action=source_field.sign_in,
            )
        )
    blocks.append(actions("nav", button("Back", BACK_ACTION, "provider")))
    return _wizard_modal(state, draft_id, blocks, "Next")


def _object_options(names: Sequence[str], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [object_option(name, labels.get(name, "")) for name in names]


def object_option(name: str, label: str, description: str = "") -> dict[str, Any]:
    """How an object shows in the pickers: its label, with the name it has in the system."""
    text = f"{label} ({name})" if label and label != name else name
    return option(text, name, description)


def objects_step(
    draft_id: str, state: WizardState, labels: dict[str, str], problem: str = ""
) -> dict[str, Any]:
    """The object pickers; ``problem`` says why the last Next did not go on (found after the ack,
    when the chosen objects were described)."""
    catalog = state.catalog
    about = ""
    if catalog:
        about = (
            f"*{escape(catalog.title or catalog.service_name)}* ({escape(catalog.protocol)}): "
            f"{catalog.object_count} objects. Type to search."
        )

    def picker(action_id: str, selected: list[str], placeholder: str) -> dict[str, Any]:
        element: dict[str, Any] = {
            "type": "multi_external_select",
            "action_id": action_id,
            "min_query_length": 0,
            "placeholder": plain(placeholder, 150),
        }
        if selected:
            element["initial_options"] = _object_options(selected[:100], labels)
        return element

    blocks = [
        section(about or "Choose the objects of the integration."),
        *([section(f":warning: {escape(problem)}", block_id="objects_error")] if problem else []),
        *(
            [
                context(
                    "Read only because the system lets nobody change them: "
                    + ", ".join(f"`{escape(name)}`" for name in state.made_read_only[:40])
                )
            ]
            if state.made_read_only
            else []
        ),
        input_block(
            OBJECTS_RW,
            "Objects to read and write",
            picker(OBJECTS_RW, state.read_write, "Search objects"),
            optional=True,
            hint="Objects the system does not let you change get read actions only.",
        ),
        input_block(
            OBJECTS_RO,
            "Objects to read only",
            picker(OBJECTS_RO, state.read_only, "Search objects"),
            optional=True,
        ),
        input_block(
            "customize",
            "Attribute choice and renames (optional)",
            text_input("customize", initial=state.customizations, multiline=True),
            optional=True,
            hint=CUSTOMIZE_HELP.replace("`", ""),
        ),
        actions("nav", button("Back", BACK_ACTION, "source")),
    ]
    return _wizard_modal(state, draft_id, blocks, "Next")


def settings_step(draft_id: str, state: WizardState) -> dict[str, Any]:
    s = state.settings
    open_option = option("Allow editing outside Integration Builder", "open", "One-way: see below")
    open_element: dict[str, Any] = {"type": "checkboxes", "action_id": "open", "options": [open_option]}
    if s.open:
        open_element["initial_options"] = [open_option]
    blocks = [
        input_block(
            "application_name",
            "Application name",
            text_input("application_name", initial=s.application_name, max_length=100),
        ),
        input_block(
            "module_name",
            "Module name",
            text_input("module_name", initial=s.module_name, max_length=60),
            hint="The package and import name: lowercase letters, digits and _; unique in this workspace.",
        ),
        input_block(
            "description",
            "Description",
            text_input("description", initial=s.description, multiline=True, max_length=1000),
            optional=True,
        ),
        input_block(
            "icon",
            "Icon (emoji)",
            text_input("icon", initial=s.icon, placeholder=":package:", max_length=60),
            optional=True,
        ),
        input_block("open", "Open integration", open_element, optional=True, hint=OPEN_HELP),
        actions("nav", button("Back", BACK_ACTION, "objects")),
    ]
    return _wizard_modal(state, draft_id, blocks, "Next")


def source_description(state: WizardState) -> str:
    source = state.source
    return {
        "url": source.url,
        "file": f"file {source.file_name}",
        "text": f"pasted metadata ({len(source.text)} characters)",
    }.get(source.kind, "")


def review_step(draft_id: str, state: WizardState, provider_title: str, problem: str = "") -> dict[str, Any]:
    """Everything on one screen, a Change button per step, Publish; ``problem`` says why the last
    Publish was refused."""
    s = state.settings
    where = source_description(state)
    catalog = state.catalog
    service = f"{catalog.service_name} ({catalog.protocol})" if catalog else ""

    def listing(names: list[str]) -> str:
        shown = ", ".join(f"`{escape(n)}`" for n in names[:40])
        more = f" and {len(names) - 40} more" if len(names) > 40 else ""
        return (shown + more) if names else "_none_"

    def row(text: str, step: str) -> Block:
        return section(text, block_id=f"review_{step}", accessory=button("Change", BACK_ACTION, step))

    blocks: list[Block] = [
        *([section(f":warning: {escape(problem)}", block_id="publish_error")] if problem else []),
        row(f"*Provider*\n{escape(provider_title)}", "provider"),
        row(f"*Source*\n{escape(clip(where, 500))}\n{escape(service)}", "source"),
        row(
            f"*Objects, read and write*\n{listing(state.writable_objects)}\n"
            f"*Objects, read only*\n{listing(state.read_only_objects)}"
            + (
                f"\n*Attribute choice and renames*\n```{escape(clip(state.customizations, 1500))}```"
                if state.customizations.strip()
                else ""
            ),
            "objects",
        ),
        row(
            f"*Application*\n{escape(s.icon)} {escape(s.application_name)}\n"
            f"*Module*\n`{escape(s.module_name)}`\n"
            f"*Description*\n{escape(s.description) or '_none_'}\n"
            f"*Open integration*\n{'yes (one-way)' if s.open else 'no'}",
            "settings",
        ),
        divider(),
        context("Publish builds the package and publishes it to the development environment."),
    ]
    return _wizard_modal(state, draft_id, blocks, "Publish")


def publishing_view(draft_id: str, module_name: str) -> dict[str, Any]:
    return modal(
        TITLE,
        [
            section(
                f":rocket: Publishing `{escape(module_name)}`… I'll send you a direct message "
                "with the progress and the result. You can close this window."
            )
        ],
        callback_id=callback_id("publishing"),
        private_metadata=draft_id,
        close="Close",
    )
