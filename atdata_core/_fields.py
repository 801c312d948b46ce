"""Field types of sample classes, and the parsing of annotations into them.

A sample type is described by a tuple of :class:`Field`, each holding a parsed
:class:`FieldType`. The schema formats read these descriptions to write a
schema, and build classes back from them with
:func:`atdata_core.sample.make_sample_type`::

    >>> sample_fields(ImageSample)                          # doctest: +SKIP
    (Field(name='image', type=Array(dtype=dtype('uint8'), shape=None), required=True, ...),
     Field(name='label', type=Scalar(type=<class 'str'>), required=True, ...))

The field types form a small closed set: :class:`Scalar`, :class:`Array`,
:class:`ListOf`, :class:`DictOf`, :class:`Optional`, :class:`Nested` and
:class:`AnyValue`. They are frozen dataclasses, so they compare by value.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from typing import Any, Callable, ClassVar

import numpy as np

from .errors import SampleTypeError

__all__ = [
    "FieldType",
    "Scalar",
    "Array",
    "ListOf",
    "DictOf",
    "Optional",
    "Nested",
    "AnyValue",
    "Field",
    "DefaultFactory",
    "parse_annotation",
    "annotation_of",
    "sample_fields",
    "is_packable",
]

# Where the decorator marks a class and where its parsed fields are cached.
_PACKABLE_ATTR = "__atdata_packable__"
_FIELDS_ATTR = "__atdata_fields__"


class FieldType:
    """A parsed field annotation: the base of the field types below.

    Subclasses are frozen dataclasses, so equal annotations give equal field
    types (``parse_annotation(list[int]) == ListOf(Scalar(int))``).
    """


@dataclasses.dataclass(frozen=True)
class Scalar(FieldType):
    """``str``, ``int``, ``float``, ``bool`` or ``bytes``.

    >>> parse_annotation(float)
    Scalar(type=<class 'float'>)
    """

    type: type


@dataclasses.dataclass(frozen=True)
class Array(FieldType):
    """A dense NDArray; ``dtype`` and ``shape`` when the annotation gives them.

    ``shape`` holds ints, or None for a dimension of any length. The dtype
    comes from ``NDArray[np.float32]`` and the like, the shape from
    ``Annotated[NDArray[np.float32], {"shape": (None, 3)}]``.

    >>> parse_annotation(NDArray[np.float32])    # doctest: +SKIP
    Array(dtype=dtype('float32'), shape=None)
    """

    dtype: np.dtype | None = None
    shape: tuple[int | None, ...] | None = None


@dataclasses.dataclass(frozen=True)
class ListOf(FieldType):
    """``list[T]`` (or ``tuple[T, ...]``), with ``item`` the field type of ``T``.

    >>> parse_annotation(list[str])
    ListOf(item=Scalar(type=<class 'str'>))
    """

    item: FieldType


@dataclasses.dataclass(frozen=True)
class DictOf(FieldType):
    """``dict[str, T]``, with ``value`` the field type of ``T`` (keys are always str)."""

    value: FieldType


@dataclasses.dataclass(frozen=True)
class Optional(FieldType):
    """``Optional[T]`` (``T | None``): the value may be None, and the field may be left out.

    >>> parse_annotation(int | None)
    Optional(inner=Scalar(type=<class 'int'>))
    """

    inner: FieldType


@dataclasses.dataclass(frozen=True)
class Nested(FieldType):
    """A nested packable class, encoded as a nested map."""

    cls: type


@dataclasses.dataclass(frozen=True)
class AnyValue(FieldType):
    """``typing.Any``: passed through as msgpack decodes it."""


@dataclasses.dataclass(frozen=True)
class DefaultFactory:
    """A field default made fresh for every sample, as ``dataclasses.field(default_factory=...)``.

    :func:`sample_fields` reports such a default as ``Field(default=DefaultFactory(list))``;
    :func:`~atdata_core.sample.make_sample_type` turns it back into a default factory.
    Call ``default.factory()`` for a value.
    """

    factory: Callable[[], Any]


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a sample type: its name, parsed type, and default.

    Args:
        name: the attribute name, also the key in the encoded map.
        type: the parsed :class:`FieldType`.
        required: False when the field has a default (an :class:`Optional`
            field without one defaults to None).
        default: the default value when not required; a :class:`DefaultFactory`
            for a default made fresh per sample.
        description: free text, from ``dataclasses.field(metadata={"description": ...})``.

    >>> Field("label", Scalar(str), required=True)
    Field(name='label', type=Scalar(type=<class 'str'>), required=True, default=None, description=None)
    """

    name: str
    type: FieldType
    required: bool
    default: Any = None  # used only when not required
    description: str | None = None


_SCALARS = (str, int, float, bool, bytes)

# numpy's abstract scalar classes name a family of dtypes, not one dtype.
_ABSTRACT_SCALARS = (
    np.generic,
    np.number,
    np.integer,
    np.signedinteger,
    np.unsignedinteger,
    np.inexact,
    np.floating,
    np.complexfloating,
    np.flexible,
    np.character,
)


def parse_annotation(annotation: Any, *, owner: str = "?", field: str = "?") -> FieldType:
    """Turn a type annotation into a :class:`FieldType`, or raise :class:`~atdata_core.errors.SampleTypeError`.

    Supported: ``str``, ``int``, ``float``, ``bool``, ``bytes``, ``list[T]``,
    ``tuple[T, ...]``, ``dict[str, T]``, ``Optional[T]``, ``typing.Any``, a
    ``@packable`` class, and arrays written ``np.ndarray``, ``NDArray``,
    ``NDArray[np.float32]`` or ``np.ndarray[Any, np.dtype[np.float32]]`` (every
    numpy release the project supports spells ``NDArray`` differently; all are
    read the same). ``Annotated[T, {"shape": ..., "dtype": ...}]`` adds an
    array's shape and dtype; other ``Annotated`` extras are ignored. Type
    aliases (``type Image = NDArray[np.uint8]``) are read through.
    ``owner`` and ``field`` only name the place in error messages.

    >>> parse_annotation(dict[str, list[int]])
    DictOf(value=ListOf(item=Scalar(type=<class 'int'>)))
    """
    if annotation in _SCALARS:
        return Scalar(annotation)
    if annotation is np.ndarray:
        return Array()
    if annotation is Any:
        return AnyValue()
    expanded = _expand_alias(annotation)
    if expanded is not annotation:
        return parse_annotation(expanded, owner=owner, field=field)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = parse_annotation(args[0], owner=owner, field=field)
        # Annotated[Optional[NDArray], {...}] too: Python 3.11 cannot put an Annotated with a
        # dict (unhashable) inside Optional, so generated code writes it this way round.
        optional = isinstance(inner, Optional) and isinstance(inner.inner, Array)
        array = inner.inner if optional else inner
        for extra in args[1:]:
            if isinstance(array, Array) and isinstance(extra, dict) and ("shape" in extra or "dtype" in extra):
                shape = extra.get("shape", array.shape)
                dtype = np.dtype(extra["dtype"]) if extra.get("dtype") is not None else array.dtype
                array = Array(dtype, tuple(shape) if shape is not None else None)
        return Optional(array) if optional else array
    if origin is np.ndarray:
        # np.ndarray[shape, np.dtype[scalar]]: the dtype is the second argument
        return Array(_dtype_of(args[1]) if len(args) == 2 else None)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1 and len(args) == 2:
            return Optional(parse_annotation(non_none[0], owner=owner, field=field))
        raise SampleTypeError(
            f"{owner}.{field}: unions other than Optional[T] are not supported ({annotation!r}); "
            "use one type per field"
        )
    if origin in (list, typing.List, tuple) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise SampleTypeError(f"{owner}.{field}: only tuple[T, ...] is supported, got {annotation!r}")
        return ListOf(parse_annotation(args[0], owner=owner, field=field))
    if origin in (dict, typing.Dict) and args:
        if args[0] is not str:
            raise SampleTypeError(f"{owner}.{field}: dict keys must be str, got {annotation!r}")
        return DictOf(parse_annotation(args[1], owner=owner, field=field))
    if annotation in (list, dict):
        return ListOf(AnyValue()) if annotation is list else DictOf(AnyValue())
    if isinstance(annotation, type) and is_packable(annotation):
        return Nested(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        raise SampleTypeError(
            f"{owner}.{field}: nested class {annotation.__name__} must itself be decorated with @packable"
        )
    raise SampleTypeError(
        f"{owner}.{field}: unsupported annotation {annotation!r}. Use str, int, float, bool, bytes, "
        "list[T], dict[str, T], Optional[T], a @packable class or NDArray"
    )


def _alias_types() -> tuple[type, ...]:
    # typing.TypeAliasType exists from Python 3.12; typing_extensions backports it (only
    # consulted when something already imported it: an alias cannot exist otherwise).
    kinds = []
    for module in (typing, sys.modules.get("typing_extensions")):
        kind = getattr(module, "TypeAliasType", None)
        if isinstance(kind, type) and kind not in kinds:
            kinds.append(kind)
    return tuple(kinds)


def _expand_alias(annotation: Any) -> Any:
    """The value of a type alias with its arguments filled in; other annotations unchanged.

    From numpy 2.5, ``NDArray`` is such an alias (``type NDArray[S] = np.ndarray[..., np.dtype[S]]``),
    so ``NDArray[np.uint8]`` has the alias, not ``np.ndarray``, as its origin. Earlier
    numpy releases define it as a plain generic alias of ``np.ndarray``, which needs nothing.
    """
    kinds = _alias_types()
    if not kinds:
        return annotation
    if isinstance(annotation, kinds):
        return annotation.__value__  # the bare alias: its parameters stay unbound
    alias = typing.get_origin(annotation)
    if not isinstance(alias, kinds):
        return annotation
    value = alias.__value__
    args = typing.get_args(annotation)
    if not getattr(alias, "__type_params__", ()) or not args:
        return value
    try:
        return value[args]
    except TypeError:
        pass
    # The value could not be subscripted with the arguments: an array alias still names
    # its dtype among them (NDArray[np.float32]); keep it, drop the rest.
    if typing.get_origin(value) is np.ndarray or value is np.ndarray:
        for arg in args:
            dtype = _dtype_of(arg)
            if dtype is not None:
                return np.ndarray[Any, np.dtype[dtype.type]]  # type: ignore[misc]
        return np.ndarray
    raise SampleTypeError(f"cannot read the type alias {annotation!r}: its arguments do not fit {value!r}")


def _dtype_of(arg: Any) -> np.dtype | None:
    """The dtype named by an array annotation's dtype argument (``np.dtype[np.float32]``, ``np.float32``).

    None when the argument leaves it open: a type variable, ``Any``, or an abstract
    scalar class such as ``np.floating``.
    """
    if typing.get_origin(arg) is np.dtype:
        inner = typing.get_args(arg)
        return _dtype_of(inner[0]) if inner else None
    if isinstance(arg, np.dtype):
        return arg
    if isinstance(arg, type) and issubclass(arg, np.generic) and arg not in _ABSTRACT_SCALARS:
        return np.dtype(arg)
    return None


def annotation_of(ft: FieldType) -> Any:
    """A Python annotation equivalent to ``ft`` (for classes built at run time).

    Arrays become ``np.ndarray``: their dtype and shape are kept by the
    :class:`Field` itself, not by the annotation.

    >>> annotation_of(ListOf(Optional(Scalar(int))))
    list[typing.Optional[int]]
    """
    if isinstance(ft, Scalar):
        return ft.type
    if isinstance(ft, Array):
        return np.ndarray
    if isinstance(ft, ListOf):
        return list[annotation_of(ft.item)]  # type: ignore[misc]
    if isinstance(ft, DictOf):
        return dict[str, annotation_of(ft.value)]  # type: ignore[misc]
    if isinstance(ft, Optional):
        return typing.Optional[annotation_of(ft.inner)]
    if isinstance(ft, Nested):
        return ft.cls
    return Any


def is_packable(cls: Any) -> bool:
    """True for classes made with :func:`~atdata_core.sample.packable` (or ``make_sample_type``)."""
    return isinstance(cls, type) and bool(getattr(cls, _PACKABLE_ATTR, False))


def sample_fields(cls: type) -> tuple[Field, ...]:
    """The parsed fields of a sample type, in declaration order.

    Fields whose names start with ``_`` and ``ClassVar`` annotations are left
    out. The result is computed once per class.

    >>> [f.name for f in sample_fields(ImageSample)]   # doctest: +SKIP
    ['image', 'label']
    """
    cached = cls.__dict__.get(_FIELDS_ATTR)
    if cached is not None:
        return cached
    if not is_packable(cls):
        raise SampleTypeError(f"{cls!r} is not a sample type; decorate it with @atdata_core.packable")
    module = sys.modules.get(cls.__module__)
    try:
        hints = typing.get_type_hints(cls, globalns=vars(module) if module else None, include_extras=True)
    except NameError as exc:
        raise SampleTypeError(f"{cls.__name__}: cannot resolve an annotation ({exc})") from exc
    out = []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or typing.get_origin(hints.get(f.name)) is ClassVar:
            continue
        ft = parse_annotation(hints[f.name], owner=cls.__name__, field=f.name)
        if f.default is not dataclasses.MISSING:
            default, required = f.default, False
        elif f.default_factory is not dataclasses.MISSING:
            default, required = DefaultFactory(f.default_factory), False
        elif isinstance(ft, Optional):
            default, required = None, False
        else:
            default, required = None, True
        out.append(Field(f.name, ft, required, default, f.metadata.get("description")))
    result = tuple(out)
    setattr(cls, _FIELDS_ATTR, result)
    return result
