"""Typed access to RPC parameters; every failure names the parameter and the rule it broke."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from herald.errors import InvalidParameter, MissingParameter


class Params:
    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def __contains__(self, name: str) -> bool:
        return name in self._values

    @property
    def values(self) -> Mapping[str, str]:
        return self._values

    def text(self, name: str, *, required: bool = False, max_len: int | None = None,
            allow_empty: bool = False) -> str | None:  # fmt: skip
        value = self._values.get(name)
        if value is None:
            if required:
                raise MissingParameter(name)
            return None
        if not value and not allow_empty:
            raise InvalidParameter(name, "must not be empty.")
        if max_len is not None and len(value) > max_len:
            raise InvalidParameter(name, f"must be at most {max_len} characters (got {len(value)}).")
        return value

    def required_str(self, name: str, *, max_len: int | None = None) -> str:
        value = self.text(name, required=True, max_len=max_len)
        assert value is not None
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._values.get(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise InvalidParameter(name, f"must be true or false (got {value!r}).")

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self._values.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise InvalidParameter(name, f"must be an integer (got {value!r}).") from None
        if not minimum <= number <= maximum:
            raise InvalidParameter(name, f"must be between {minimum} and {maximum} (got {number}).")
        return number

    def integer_or_none(self, name: str, *, minimum: int, maximum: int) -> int | None:
        if self._values.get(name) in (None, ""):
            return None
        return self.integer(name, 0, minimum=minimum, maximum=maximum)

    def number(self, name: str, *, minimum: float, maximum: float) -> float | None:
        value = self._values.get(name)
        if value is None or value == "":
            return None
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidParameter(name, f"must be a number (got {value!r}).") from None
        if not minimum <= number <= maximum:  # also refuses nan
            raise InvalidParameter(name, f"must be between {minimum} and {maximum} (got {value.strip()}).")
        return number

    def json_object(self, name: str) -> dict[str, Any] | None:
        value = self._values.get(name)
        if value is None or value.strip() == "":
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidParameter(name, f"must be a JSON object: {exc.msg} at position {exc.pos}.") from None
        if not isinstance(parsed, dict):
            raise InvalidParameter(name, f"must be a JSON object, not {type(parsed).__name__}.")
        return parsed

    def time(self, name: str) -> datetime | None:
        value = self._values.get(name)
        if value is None or value.strip() == "":
            return None
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise InvalidParameter(
                name, f"must be an ISO 8601 time such as 2026-11-21T08:00:00Z (got {value!r})."
            ) from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
