"""The objects step's "attribute choice and renames" field: one instruction per line.

``ProductSet: ProductID, Name, Price`` keeps only those attributes of ProductSet (its keys are
always kept); ``ProductSet.Price = unit_price`` names the attribute ``unit_price`` in the package.
Blank lines and lines starting with ``#`` are ignored. Every problem names its line, so the user
finds it under the field without guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from generator.names import RECORD_MEMBERS, python_name_problem
from providers.model import ObjectDef

_SEPARATORS = re.compile(r"[\s,]+")


class CustomizeError(ValueError):
    """One line of the field is wrong; ``str()`` starts with the line number."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


@dataclass(slots=True)
class Customization:
    attributes: list[str] | None = None  # None keeps every attribute
    renames: dict[str, str] = field(default_factory=dict)  # wire name -> Python name
    chosen_on: int = 0  # the line that chose the attributes, 0 when none did
    renamed_on: dict[str, int] = field(default_factory=dict)  # wire name -> line of its rename


def parse_customizations(
    text: str, chosen: Collection[str], lookup: Callable[[str], ObjectDef | None]
) -> dict[str, Customization]:
    """The customizations per object name; raises :class:`CustomizeError` at the first bad line.

    ``chosen`` are the objects picked in the step, ``lookup`` finds an object of the catalog.
    """
    result: dict[str, Customization] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        target, equals, new_name = line.partition("=")
        if equals:
            object_name, dot, attribute = target.strip().partition(".")
            if not dot:
                raise CustomizeError(number, f"write a rename as Object.attribute = new_name, not {line!r}")
            obj = _chosen_object(number, object_name.strip(), chosen, lookup)
            _rename(number, obj, result.setdefault(obj.name, Customization()), attribute.strip(), new_name)
            continue
        object_name, colon, names = line.partition(":")
        if not colon:
            raise CustomizeError(
                number, f"write Object: attribute, attribute or Object.attribute = new_name, not {line!r}"
            )
        obj = _chosen_object(number, object_name.strip(), chosen, lookup)
        _choose(number, obj, result.setdefault(obj.name, Customization()), names)
    for name, customization in result.items():
        _check_renames_are_kept(lookup(name), customization)
    return result


def _chosen_object(
    line: int, name: str, chosen: Collection[str], lookup: Callable[[str], ObjectDef | None]
) -> ObjectDef:
    obj = lookup(name)
    if obj is None:
        raise CustomizeError(line, f"there is no object {name!r} in the metadata")
    if name not in chosen:
        raise CustomizeError(line, f"{name} is not one of the chosen objects; choose it above first")
    return obj


def _attribute(line: int, obj: ObjectDef, name: str) -> str:
    if not any(attribute.name == name for attribute in obj.attributes):
        raise CustomizeError(line, f"{obj.name} has no attribute {name!r}")
    return name


def _choose(line: int, obj: ObjectDef, customization: Customization, names: str) -> None:
    if customization.chosen_on:
        raise CustomizeError(
            line, f"the attributes of {obj.name} are already chosen on line {customization.chosen_on}"
        )
    wanted = [_attribute(line, obj, name) for name in _SEPARATORS.split(names.strip()) if name]
    if not wanted:
        raise CustomizeError(line, f"name at least one attribute of {obj.name} after the colon")
    customization.attributes = list(dict.fromkeys(wanted))
    customization.chosen_on = line


def _rename(line: int, obj: ObjectDef, customization: Customization, attribute: str, new_name: str) -> None:
    wire = _attribute(line, obj, attribute)
    python = new_name.strip()
    problem = python_name_problem(python, RECORD_MEMBERS)
    if problem:
        raise CustomizeError(line, f"{obj.name}.{wire} cannot be renamed: {problem}")
    if wire in customization.renames:
        earlier = customization.renamed_on[wire]
        raise CustomizeError(line, f"{obj.name}.{wire} is already renamed on line {earlier}")
    for other, taken in customization.renames.items():
        if taken == python:
            raise CustomizeError(line, f"{obj.name}.{other} is already renamed to {python!r}")
    customization.renames[wire] = python
    customization.renamed_on[wire] = line


def _check_renames_are_kept(obj: ObjectDef | None, customization: Customization) -> None:
    if obj is None or customization.attributes is None:
        return
    kept = set(customization.attributes) | {attribute.name for attribute in obj.keys}
    for wire, line in customization.renamed_on.items():
        if wire not in kept:
            raise CustomizeError(
                line,
                f"{obj.name}.{wire} is renamed but not among the attributes chosen on line "
                f"{customization.chosen_on}",
            )
