"""Field defaults as JSON text, the value of ``(atdata.v1.field).default``.

proto3 has no defaults, so the option carries them, written the way the JSON
Schema format writes its ``default`` keyword: bytes as base64 text, a nested
sample as an object of its fields. The text sits inside the descriptor's
bytes, not in the record's JSON, so floats are written as JSON numbers.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
from typing import Any

import numpy as np

from atdata_core.errors import SchemaError
from atdata_core.plugins import (
    AnyValue,
    Array,
    DefaultFactory,
    DictOf,
    FieldType,
    ListOf,
    Nested,
    Optional,
    Scalar,
    sample_fields,
)

__all__ = ["default_from_text", "default_to_text"]

#: Longest default text read from a record.
MAX_DEFAULT_TEXT = 100_000


def default_to_text(value: Any, ft: FieldType, where: str) -> str:
    """The JSON text of a default ``value`` of a field of type ``ft``."""
    return json.dumps(_to_json(value, ft, where), ensure_ascii=False, separators=(",", ":"))


def _to_json(value: Any, ft: FieldType, where: str) -> Any:
    if isinstance(value, DefaultFactory):
        value = value.factory()
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(ft, Optional):
        return _to_json(value, ft.inner, where)
    if isinstance(ft, Scalar):
        if ft.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SchemaError(f"{where}: default {value!r} is not a number")
            return float(value)
        if ft.type is bytes:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise SchemaError(f"{where}: default {value!r} is not bytes")
            return base64.b64encode(bytes(value)).decode("ascii")
        if not isinstance(value, ft.type) or (ft.type is int and isinstance(value, bool)):
            raise SchemaError(f"{where}: default {value!r} is not a {ft.type.__name__}")
        return value
    if isinstance(ft, ListOf):
        return [_to_json(v, ft.item, f"{where}[]") for v in value]
    if isinstance(ft, DictOf):
        return {str(k): _to_json(v, ft.value, f"{where}{{}}") for k, v in value.items()}
    if isinstance(ft, Nested):
        return {f.name: _to_json(getattr(value, f.name), f.type, f"{where}.{f.name}") for f in sample_fields(ft.cls)}
    if isinstance(ft, Array):
        raise SchemaError(
            f"{where}: an NDArray default cannot be written into a schema; make the field Optional with "
            "default None, or required"
        )
    return _plain(value, where)


def _plain(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    raise SchemaError(
        f"{where}: default {value!r} cannot be written into a schema (untyped defaults may hold strings, "
        "numbers, booleans, lists and maps only)"
    )


def default_from_text(text: str, ft: FieldType, where: str) -> Any:
    """The default a field of type ``ft`` gets from the option's JSON ``text``."""
    if len(text) > MAX_DEFAULT_TEXT:
        raise SchemaError(f"{where}: the default is {len(text)} characters of JSON; at most {MAX_DEFAULT_TEXT}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise SchemaError(f"{where}: the default is not JSON text ({err})") from None
    return _from_json(value, ft, where)


def _from_json(value: Any, ft: FieldType, where: str) -> Any:
    if value is None:
        return None
    if isinstance(ft, Optional):
        return _from_json(value, ft.inner, where)
    if isinstance(ft, Scalar):
        return _scalar(value, ft.type, where)
    if isinstance(ft, ListOf):
        if not isinstance(value, list):
            raise SchemaError(f"{where}: default {value!r} is not a list")
        return [_from_json(v, ft.item, f"{where}[]") for v in value]
    if isinstance(ft, DictOf):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: default {value!r} is not a map")
        return {k: _from_json(v, ft.value, f"{where}{{}}") for k, v in value.items()}
    if isinstance(ft, Nested):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: default {value!r} is not an object of {ft.cls.__name__}'s fields")
        known = {f.name: f for f in sample_fields(ft.cls)}
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise SchemaError(f"{where}: the default names fields {ft.cls.__name__} does not have: {unknown}")
        kwargs = {name: _from_json(item, known[name].type, f"{where}.{name}") for name, item in value.items()}
        try:
            prototype = ft.cls(**kwargs)
        except TypeError as err:
            raise SchemaError(f"{where}: cannot build the default {ft.cls.__name__}: {err}") from None
        # A sample is mutable: every new sample gets its own copy.
        return DefaultFactory(lambda: copy.deepcopy(prototype))
    if isinstance(ft, Array):
        raise SchemaError(f"{where}: NDArray fields have no defaults other than null")
    if isinstance(ft, AnyValue):
        return value
    raise SchemaError(f"{where}: cannot read a default for {ft!r}")


def _scalar(value: Any, kind: type, where: str) -> Any:
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{where}: default {value!r} is not a number")
        return float(value)
    if kind is bytes:
        if not isinstance(value, str):
            raise SchemaError(f"{where}: a bytes default is base64 text, got {value!r}")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as err:
            raise SchemaError(f"{where}: default {value!r} is not base64 ({err})") from None
    if kind is int and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SchemaError(f"{where}: default {value!r} is not a {kind.__name__}")
    return value
