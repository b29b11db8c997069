"""The one base of every CRD model: snake_case in Python, camelCase in documents.

Aliases come from one alias generator, never from `Field(alias=...)`, so type checkers see the
snake_case names in constructors while documents are read and written in camelCase. Specs a
user writes are strict and frozen (`SpecModel`); statuses the operator writes are lenient
(`StatusModel`: they parse what an older or newer operator wrote, timestamps as strings).
A status message is a `Message`, cut to the CRDs' bound (`truncate` where it is assigned).

The generated CRDs (DrillPlan, DrillRun, NetworkFault) are derived from these models by
modeldr.api.schema: a field's `description` and a nested model's docstring are what `kubectl
explain` prints, so write them for the CRD's reader.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from modeldr.api.schema import OpenAPI

MESSAGE_MAX_LENGTH: Final = 4096
# Acronyms the contracts spell in capitals (DRILLS.md's RTO, Gateway API's API).
_CAMEL_EXCEPTIONS: Final = {"max_rto_seconds": "maxRTOSeconds", "gateway_api": "gatewayAPI"}


def camel(name: str) -> str:
    """The CRD's (camelCase) name of a model field."""
    return _CAMEL_EXCEPTIONS.get(name) or to_camel(name)


def truncate(message: str) -> str:
    """A message cut to the bound every CRD puts on status messages."""
    return message[:MESSAGE_MAX_LENGTH]


# Cut, not refused: a message too long for the CRD is cut where it is assigned.
Message = Annotated[str, AfterValidator(truncate), OpenAPI(maxLength=MESSAGE_MAX_LENGTH)]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=camel, populate_by_name=True, extra="ignore")

    def dump(self) -> dict[str, Any]:
        """The JSON body to write to the apiserver (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(ApiModel):
    # strict: a YAML "5" is not 5 (the apiserver refuses it too); forbid: a typo is an error,
    # like kubectl's strict field validation, not a silently ignored field.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StatusModel(ApiModel):
    # Lenient: parses what the engine wrote (timestamps come back as strings); unknown keys
    # are ignored so an older engine can read a newer status. Fields are assigned without
    # validation as the engine goes: a message assigned later is cut with `truncate`.
    pass
