"""A CRD's schema from its models: the structural OpenAPI v3 schema the apiserver validates and
defaults objects with, derived from the pydantic models so that the model is the only source,
as controller-gen derives a CRD from Go types and their markers.

What comes from where:

- fields, `required` (a field without a default), types, enums (`Literal`, `StrEnum`),
  bounds and patterns: the fields' types and constraints (`Field(ge=..., max_length=...,
  pattern=...)`, `StringConstraints`);
- descriptions: `Field(description=...)`, else the nested model's docstring (so a model's
  docstring is user documentation: `kubectl explain` prints it);
- defaults (spec only: see `schema_of`): a field's default; a model made by a
  `default_factory` is `{}` (the apiserver then fills in its fields' own defaults), an empty
  list or map none (absent is empty), any other value the factory's;
- CEL `x-kubernetes-validations`: `validations(Rule(...), ...)` in the model's
  `model_config`, beside the Python validator that applies the same rule;
- anything else OpenAPI says that pydantic does not (`format: int64`, `x-kubernetes-list-type`,
  a description of a reusable type): an `OpenAPI(...)` annotation, or `Field(json_schema_extra=)`
  on one field.

An optional field (`X | None = None`) is simply not required: the apiserver has no null for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.config import JsonDict
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, NoDefault
from pydantic_core import core_schema

Schema = dict[str, Any]

# The keys a structural schema may hold here, in the order they are written.
KEYS: Final = (
    "type",
    "description",
    "format",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "default",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
)

Reason = Literal["FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden"]


@dataclass(frozen=True)
class Rule:
    """One CEL rule of a model's `x-kubernetes-validations`.

    `field_path` (relative to the object, e.g. `.value`) is the field the apiserver names in
    its answer, `reason` what it says about it (default FieldValueInvalid; "Duplicate" would
    hide the message).
    """

    rule: str
    message: str
    field_path: str | None = None
    reason: Reason | None = None

    def schema(self) -> Schema:
        node: Schema = {"rule": " ".join(self.rule.split()), "message": self.message}
        if self.field_path is not None:
            node["fieldPath"] = self.field_path
            node["reason"] = self.reason or "FieldValueInvalid"
        elif self.reason is not None:
            raise ValueError(f"a reason needs a fieldPath: {self.rule}")
        return node


def unique_names(field: str, message: str) -> Rule:
    """The items of the list `field` have distinct `name`s."""
    # exists_one over a bounded list: O(n^2) at n <= 20, well inside the CEL cost budget.
    return Rule(
        f"!has(self.{field}) || self.{field}.all(x, self.{field}.exists_one(y, y.name == x.name))",
        message,
        field_path=f".{field}",
    )


def validations(*rules: Rule) -> JsonDict:
    """A model's CEL rules, for its `model_config = ConfigDict(json_schema_extra=...)`."""
    return {"x-kubernetes-validations": [r.schema() for r in rules]}


class OpenAPI:
    """An annotation that adds OpenAPI keys to a type's schema and changes nothing else:
    `Annotated[int, OpenAPI(format="int64")]`; `OpenAPI({"x-kubernetes-list-type": "set"})`
    for keys that are not Python names."""

    def __init__(self, keys: Schema | None = None, /, **more: Any) -> None:
        self.keys: Schema = {**(keys or {}), **more}

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        node = handler(schema)
        node.update(self.keys)
        return node


# An integer the apiserver keeps as int64 (a generation, a count that may grow large, a seed).
Int64 = Annotated[int, OpenAPI(format="int64")]


class _Spec(GenerateJsonSchema):
    """pydantic's JSON Schema with the apiserver's defaults and no nulls."""

    defaults = True

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        if not self.defaults:
            return NoDefault
        if "default_factory" in schema:
            if schema.get("default_factory_takes_data"):
                return NoDefault
            value = schema["default_factory"]()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                return {}  # its fields' own defaults do the rest
            return NoDefault if value in ([], {}) else value
        default = schema.get("default", NoDefault)
        return NoDefault if default is None else default

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def sort(self, value: JsonSchemaValue, parent_key: str | None = None) -> JsonSchemaValue:
        return value  # as declared: a rule reads rule, message, fieldPath, reason


class _Status(_Spec):
    defaults = False


def schema_of(model: type[BaseModel], *, defaults: bool = True) -> Schema:
    """The structural schema of `model` (camelCase names).

    `defaults=False` for a status: the operator writes every value it means, and a default
    there would make the apiserver write what the operator did not.
    """
    raw = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_Spec if defaults else _Status
    )
    definitions = raw.pop("$defs", {})
    return structural(raw, definitions)


def structural(node: Schema, definitions: dict[str, Schema]) -> Schema:
    """A JSON Schema node of pydantic's as a structural OpenAPI v3 one: references inlined
    (the referring node's own keys, a field's description or default, win), no titles,
    boolean exclusive bounds, whitespace-normalized descriptions, keys in `KEYS` order."""
    if "$ref" in node:
        target = definitions[node["$ref"].removeprefix("#/$defs/")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    out: Schema = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key == "description":
            out[key] = " ".join(value.split())
        elif key == "properties":
            out[key] = {name: structural(child, definitions) for name, child in value.items()}
        elif key == "items":
            out[key] = structural(value, definitions)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = structural(value, definitions)
            elif value is not False or "properties" not in node:
                raise ValueError(f"additionalProperties: {value!r} is not structural")
            # False beside properties: extra="forbid"; the apiserver prunes unknown fields.
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out[key.replace("exclusiveM", "m")] = value
            out[key] = True
        elif key in KEYS:
            out[key] = value
        else:
            raise ValueError(f"{key} in {node}: not part of a structural schema here")
    return {key: out[key] for key in KEYS if key in out}
