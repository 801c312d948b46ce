"""Typed samples: ``@packable`` classes, the class factory, and the schema-less :class:`DictSample`.

A sample type is an annotated class turned into a dataclass by :func:`packable`::

    @packable
    class ImageSample:
        image: NDArray[np.uint8]
        label: str
        score: float = 0.0

    blob = ImageSample(image=img, label="cat").to_bytes()
    ImageSample.from_bytes(blob)

Field types: ``str``, ``int``, ``float``, ``bool``, ``bytes``, ``list[T]``,
``dict[str, T]``, ``Optional[T]``, nested packable classes, and arrays annotated
``NDArray``, ``NDArray[np.float32]`` or ``np.ndarray``. :func:`sample_fields`
exposes the parsed field types (:class:`Field`, :class:`FieldType` and its
subclasses), and :func:`make_sample_type` builds a packable class back from
them: together they are what a schema format needs.

This module is the public face of three private ones: ``_fields`` (field types
and annotation parsing), ``_codec_compiler`` (per-class encoders and decoders)
and ``_dict_sample`` (:class:`DictSample`).
"""

from __future__ import annotations

import copyreg
import dataclasses
from typing import Any, Callable, dataclass_transform

from ._codec_compiler import codec_of, decoder_for, sample_codec
from ._dict_sample import DictSample, values_equal
from ._fields import (
    _FIELDS_ATTR,
    _PACKABLE_ATTR,
    AnyValue,
    Array,
    DefaultFactory,
    DictOf,
    Field,
    FieldType,
    ListOf,
    Nested,
    Optional,
    Scalar,
    annotation_of,
    is_packable,
    parse_annotation,
    sample_fields,
)

__all__ = [
    "packable",
    "is_packable",
    "sample_fields",
    "make_sample_type",
    "set_rebuild_recipe",
    "parse_annotation",
    "annotation_of",
    "Field",
    "FieldType",
    "Scalar",
    "Array",
    "ListOf",
    "DictOf",
    "Optional",
    "Nested",
    "AnyValue",
    "DefaultFactory",
    "DictSample",
    "sample_codec",
    "decoder_for",
]


# --------------------------------------------------------------------------- the decorator


# Type checkers treat a @packable class as the dataclass it becomes (constructor arguments, fields).
@dataclass_transform(field_specifiers=(dataclasses.field, dataclasses.Field))
def packable(cls: type | None = None, /, **dataclass_kwargs: Any) -> Any:
    """Make an annotated class a sample type (a dataclass with a wire codec).

    Adds ``obj.to_bytes()``, ``cls.from_bytes(data)``, ``obj.to_map()`` and
    ``cls.from_map(mapping)``. Annotations are resolved on first use, so
    ``from __future__ import annotations`` and forward references work.
    Keyword arguments go to :func:`dataclasses.dataclass` (``@packable(frozen=True)``).
    """

    def wrap(klass: type) -> type:
        if not dataclasses.is_dataclass(klass):
            klass = dataclasses.dataclass(klass, **dataclass_kwargs)
        setattr(klass, _PACKABLE_ATTR, True)
        if klass.__dict__.get("__eq__") is not None and getattr(klass, "__dataclass_params__").eq:
            # the generated __eq__ compares field tuples, which fails on arrays
            klass.__eq__ = _sample_eq
        klass.to_bytes = _to_bytes_method
        klass.to_map = _to_map_method
        klass.from_bytes = classmethod(_from_bytes_method)
        klass.from_map = classmethod(_from_map_method)
        return klass

    return wrap if cls is None else wrap(cls)


def _sample_eq(self: Any, other: Any) -> bool:
    if type(other) is not type(self):
        return NotImplemented
    return all(
        values_equal(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
    )


def _to_bytes_method(self: Any) -> bytes:
    """Encode this sample as one msgpack member."""
    return codec_of(type(self)).to_bytes(self)


def _to_map_method(self: Any) -> dict[str, Any]:
    """This sample as a msgpack-ready map (arrays as NDArray bytes)."""
    return codec_of(type(self)).to_map(self)


def _from_bytes_method(cls: type, data: bytes) -> Any:
    """Decode a sample of this type from one msgpack member."""
    return codec_of(cls).from_bytes(data)


def _from_map_method(cls: type, data: dict[str, Any]) -> Any:
    """Build a sample of this type from a decoded msgpack map."""
    return codec_of(cls).from_map(data)


# --------------------------------------------------------------------------- classes built at run time


class _BuiltAtRunTime(type):
    """Metaclass of sample classes built at run time.

    Such a class lives in no importable module, so pickle (a spawned DataLoader
    worker, say) cannot find it by name. When the code that built it leaves a
    recipe with :func:`set_rebuild_recipe`, the class pickles as that recipe
    and is rebuilt on the other side.
    """


def _reduce_built_class(cls: type) -> Any:
    recipe = cls.__dict__.get("__atdata_rebuild__")
    if recipe is None:
        return cls.__qualname__  # plain lookup by name; fails clearly if absent
    return recipe


copyreg.pickle(_BuiltAtRunTime, _reduce_built_class)


class _RunTimeBase(metaclass=_BuiltAtRunTime):
    __slots__ = ()


def set_rebuild_recipe(cls: type, rebuild: Callable[..., type], *args: Any) -> None:
    """Make a class from :func:`make_sample_type` picklable as ``rebuild(*args)``.

    Other classes are left alone: they live in a module and pickle by name.
    ``rebuild`` must itself be importable (a module-level function), and ``args``
    picklable; a schema format passes its own loader and the schema record.

    >>> set_rebuild_recipe(cls, load_class_from_schema, schema_record)   # doctest: +SKIP
    """
    if not isinstance(cls, _BuiltAtRunTime):
        return
    type.__setattr__(cls, "__atdata_rebuild__", (rebuild, args))


def make_sample_type(
    name: str, fields: list[Field] | tuple[Field, ...], *, module: str = "atdata_core.generated", doc: str | None = None
) -> type:
    """Build a packable sample class at run time from field descriptions.

    This is the factory schema formats use to turn a schema into a class. The
    parsed types are kept exactly (array dtypes and shapes included), so
    ``sample_fields(cls)`` gives back ``fields``; required fields come first
    in the generated ``__init__``. A ``list``, ``dict`` or ``set`` default,
    or a :class:`DefaultFactory`, gives every sample a fresh value. See
    :func:`set_rebuild_recipe` to make the class picklable.

    Args:
        name: the class name.
        fields: the fields, as :class:`Field` objects.
        module: the ``__module__`` the class reports.
        doc: its docstring.

    >>> Point = make_sample_type("Point", [
    ...     Field("x", Scalar(float), required=True),
    ...     Field("tags", ListOf(Scalar(str)), required=False, default=[]),
    ... ])
    >>> Point.from_bytes(Point(x=1.5).to_bytes())
    Point(x=1.5, tags=[])
    """
    ordered = [f for f in fields if f.required] + [f for f in fields if not f.required]
    spec = []
    for f in ordered:
        if f.required:
            spec.append((f.name, annotation_of(f.type)))
        elif isinstance(f.default, DefaultFactory):
            spec.append((f.name, annotation_of(f.type), dataclasses.field(default_factory=f.default.factory)))
        elif isinstance(f.default, (list, dict, set)):
            value = f.default
            spec.append((f.name, annotation_of(f.type), dataclasses.field(default_factory=lambda v=value: type(v)(v))))
        else:
            default = f.default
            spec.append((f.name, annotation_of(f.type), dataclasses.field(default=default)))
    cls = dataclasses.make_dataclass(
        name, spec, bases=(_RunTimeBase,), namespace={"__module__": module, "__doc__": doc or f"{name} sample"}
    )
    cls = packable(cls)
    setattr(cls, _FIELDS_ATTR, tuple(
        Field(
            f.name,
            f.type,
            f.required,
            DefaultFactory(f.default.factory) if isinstance(f.default, DefaultFactory) else f.default,
            f.description,
        )
        for f in ordered
    ))
    return cls
