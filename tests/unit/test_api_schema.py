"""modeldr.api.schema: a model's structural CRD schema, on small models (the CRDs themselves
are checked in test_drills_spec.py and test_agent.py)."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from modeldr.api.base import SpecModel, StatusModel
from modeldr.api.schema import Int64, OpenAPI, Rule, schema_of, unique_names, validations


class Inner(SpecModel):
    """An inner object.

    Its docstring is its description, whitespace folded."""

    size: int = Field(default=3, ge=1, le=10)
    tags: list[str] = Field(default_factory=list, max_length=4)


class Outer(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule("has(self.name) || has(self.ratio)", "name or ratio"),
            Rule("self.count >= 0", "count is at least 0", field_path=".count"),
            unique_names("items", "items[].name must be unique"),
        )
    )

    name: str | None = Field(default=None, max_length=8, pattern="^[a-z]+$")
    ratio: float | None = Field(default=None, gt=0, le=1, description="A ratio.")
    count: Int64 = 0
    mode: Literal["a", "b"] = "a"
    inner: Inner = Field(default_factory=lambda: Inner.model_validate({}))
    other: Inner | None = Field(default=None, description="The field's words win.")
    items: list[Annotated[str, OpenAPI(description="One item.")]] = Field(
        default_factory=lambda: ["x"], max_length=2
    )
    labels: dict[str, Annotated[str, Field(max_length=5)]] = Field(
        default_factory=dict, max_length=3
    )
    needed: bool


def test_a_spec_model_becomes_a_structural_schema() -> None:
    schema = schema_of(Outer)
    properties = schema["properties"]
    assert schema["type"] == "object" and schema["required"] == ["needed"]
    assert "additionalProperties" not in schema and "title" not in schema
    # Optional: not required, no null.
    assert properties["name"] == {
        "type": "string",
        "maxLength": 8,
        "pattern": "^[a-z]+$",
    }
    # OpenAPI v3.0's boolean exclusive bound.
    assert properties["ratio"] == {
        "type": "number",
        "description": "A ratio.",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
    }
    assert properties["count"] == {"type": "integer", "format": "int64", "default": 0}
    assert properties["mode"] == {"type": "string", "enum": ["a", "b"], "default": "a"}


def test_references_are_inlined_with_the_fields_words() -> None:
    properties = schema_of(Outer)["properties"]
    inner = {
        "type": "object",
        "description": "An inner object. Its docstring is its description, whitespace folded.",
        "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
            "tags": {"type": "array", "maxItems": 4, "items": {"type": "string"}},
        },
    }
    # A model made by a factory defaults to {}: the apiserver fills in its fields' defaults.
    assert properties["inner"] == {**inner, "default": {}}
    assert properties["other"] == {**inner, "description": "The field's words win."}


def test_factory_defaults_and_maps() -> None:
    properties = schema_of(Outer)["properties"]
    assert properties["items"] == {
        "type": "array",
        "maxItems": 2,
        "items": {"type": "string", "description": "One item."},
        "default": ["x"],
    }
    # An empty list or map by default: absent is empty, no default.
    assert properties["labels"] == {
        "type": "object",
        "maxProperties": 3,
        "additionalProperties": {"type": "string", "maxLength": 5},
    }


def test_cel_rules_are_the_models() -> None:
    assert schema_of(Outer)["x-kubernetes-validations"] == [
        {"rule": "has(self.name) || has(self.ratio)", "message": "name or ratio"},
        {
            "rule": "self.count >= 0",
            "message": "count is at least 0",
            "fieldPath": ".count",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": "!has(self.items)"
            " || self.items.all(x, self.items.exists_one(y, y.name == x.name))",
            "message": "items[].name must be unique",
            "fieldPath": ".items",
            "reason": "FieldValueInvalid",
        },
    ]
    with pytest.raises(ValueError, match="fieldPath"):
        Rule("true", "no field", reason="FieldValueRequired").schema()


class Status(StatusModel):
    phase: Literal["Pending", "Done"] = "Pending"
    count: int = Field(default=0, ge=0)
    inner: Inner = Field(default_factory=lambda: Inner.model_validate({}))


def test_a_status_has_no_defaults() -> None:
    # The operator writes what it means; the apiserver adds nothing to a status.
    schema = schema_of(Status, defaults=False)
    assert schema["properties"]["phase"] == {"type": "string", "enum": ["Pending", "Done"]}
    assert schema["properties"]["count"] == {"type": "integer", "minimum": 0}
    assert "default" not in schema["properties"]["inner"]
    assert "default" not in schema["properties"]["inner"]["properties"]["size"]


class Either(BaseModel):
    value: int | str


def test_what_a_structural_schema_cannot_say_is_refused() -> None:
    with pytest.raises(ValueError, match="anyOf"):
        schema_of(Either)
