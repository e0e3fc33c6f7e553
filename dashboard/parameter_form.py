"""One input per ranking parameter, typed and bounded from the Parameters model itself, so
a new parameter appears on the page without touching the dashboard."""

from __future__ import annotations

import enum
import typing
from collections.abc import Mapping
from typing import Any

import streamlit as st
from pydantic.fields import FieldInfo

from serving.core.parameters import Parameters


def _bounds(field: FieldInfo) -> tuple[float | None, float | None]:
    low = high = None
    for rule in field.metadata:
        low = getattr(rule, "ge", None) if getattr(rule, "ge", None) is not None else low
        high = getattr(rule, "le", None) if getattr(rule, "le", None) is not None else high
    return low, high


def _is_sequence(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (tuple, list)


def normalise(value: Any) -> Any:
    """Lists (from the API) as tuples, so that values compare equal to the model's."""
    return tuple(value) if isinstance(value, list | tuple) else value


def inputs(current: Mapping[str, Any], key: str = "param") -> dict[str, Any]:
    """An input per parameter, preset to ``current``; returns name -> entered value."""
    entered: dict[str, Any] = {}
    columns = st.columns(3)
    for index, (name, field) in enumerate(Parameters.model_fields.items()):
        annotation, value = field.annotation, current.get(name, field.default)
        help_text = field.description
        widget_key = f"{key}_{name}"
        with columns[index % 3]:
            if annotation is bool:
                entered[name] = st.checkbox(name, bool(value), key=widget_key, help=help_text)
            elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
                options = [member.value for member in annotation]
                chosen = str(getattr(value, "value", value))
                entered[name] = st.selectbox(
                    name, options, options.index(chosen), key=widget_key, help=help_text
                )
            elif annotation is int:
                low, high = _bounds(field)
                entered[name] = int(
                    st.number_input(
                        name,
                        min_value=None if low is None else int(low),
                        max_value=None if high is None else int(high),
                        value=int(value),
                        step=1,
                        key=widget_key,
                        help=help_text,
                    )
                )
            elif _is_sequence(annotation):
                text = st.text_input(
                    name,
                    ", ".join(value),
                    key=widget_key,
                    help=f"{help_text or ''} (comma-separated)",
                )
                entered[name] = tuple(part.strip() for part in text.split(",") if part.strip())
            else:
                # Floats: bounds are checked by the model on submit (gt-bounds included),
                # so an out-of-range value gets the model's own message.
                entered[name] = float(
                    st.number_input(
                        name,
                        value=float(value),
                        step=0.01,
                        format="%.4f",
                        key=widget_key,
                        help=help_text,
                    )
                )
    return entered


def changes(current: Mapping[str, Any], entered: Mapping[str, Any]) -> dict[str, Any]:
    """The entered values that differ from the current ones."""
    return {
        name: value
        for name, value in entered.items()
        if normalise(value) != normalise(getattr(current.get(name), "value", current.get(name)))
    }
