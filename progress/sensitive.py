"""Which values of an event are sensitive (marked ``SENSITIVE`` in its schema), split out of
its JSON so they can be stored encrypted, and put back. Pure: no keys, no cipher here.

A path is a list of keys and list indexes from the event's root, e.g. ``["chapters", 0,
"summary"]``.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from progress.events import EventEnvelope

Path = list[str | int]


def _is_sensitive(model: type[BaseModel], name: str) -> bool:
    extra = model.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and extra.get("sensitive") is True


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model in ``annotation`` (``M``, ``M | None``, ``list[M]``), and if it is a list."""
    origin = get_origin(annotation)
    if origin in (list, tuple):
        inner, _ = _nested_model(get_args(annotation)[0])
        return inner, True
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found, is_list = _nested_model(arg)
            if found is not None:
                return found, is_list
        return None, False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def _walk(model: type[BaseModel], data: dict[str, Any], prefix: Path) -> list[Path]:
    paths: list[Path] = []
    for name in model.model_fields:
        if name not in data or data[name] is None:
            continue
        if _is_sensitive(model, name):
            paths.append([*prefix, name])
            continue
        nested, is_list = _nested_model(model.model_fields[name].annotation)
        if nested is None:
            continue
        if is_list:
            for index, item in enumerate(data[name]):
                paths += _walk(nested, item, [*prefix, name, index])
        else:
            paths += _walk(nested, data[name], [*prefix, name])
    return paths


def split_sensitive(event: EventEnvelope) -> tuple[dict[str, Any], list[tuple[Path, Any]]]:
    """The event as JSON-ready data with every sensitive value set to None, and those values."""
    data = event.model_dump(mode="json")
    secrets: list[tuple[Path, Any]] = []
    for path in _walk(type(event), data, []):
        *parents, last = path
        holder: Any = data
        for key in parents:
            holder = holder[key]
        secrets.append((path, holder[last]))
        holder[last] = None
    return data, secrets


def merge_sensitive(data: dict[str, Any], secrets: list[tuple[Path, Any]]) -> dict[str, Any]:
    """Inverse of :func:`split_sensitive`: put the values back (in place; returns ``data``)."""
    for path, value in secrets:
        *parents, last = path
        holder: Any = data
        for key in parents:
            holder = holder[key]
        holder[last] = value
    return data
