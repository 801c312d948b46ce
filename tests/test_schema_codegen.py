"""Python source generated from schema records compiles and describes the same samples."""

from __future__ import annotations

import sys
import types
from typing import Annotated, Optional

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_core import sample_fields
from atdata_core.schema import JsonSchemaFormat, generate_python, sample_type_from_record, schema_record

from tests.test_schema_jsonschema import THEIR_REFERENCE_EXAMPLE, Every, every_sample, npy, same_fields

fmt = JsonSchemaFormat()


def load_module(source: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@pytest.fixture
def generated_module(request):
    names = []

    def load(source):
        name = f"generated_{request.node.name}_{len(names)}"
        names.append(name)
        return load_module(source, name)

    yield load
    for name in names:
        sys.modules.pop(name, None)


def test_generated_source_defines_the_same_sample_type(generated_module):
    record = schema_record(Every, name="com.example.every", version="1.0.0", description='All "types".')
    source = generate_python(record)
    module = generated_module(source)
    cls = module.Every
    assert same_fields(Every, cls)
    # The honest round trip: a class written as source, not built at run time, gives the schema back.
    assert fmt.schema_from_type(cls) == record["schema"]
    assert cls.__doc__ == 'All "types".'
    assert "features: Annotated[NDArray[np.float32], {'shape': (None, 64)}]" in source
    assert "image: NDArray[np.uint8]" in source
    assert "caption: str | None = None" in source
    assert source.index("class Point") < source.index("class Every")


def test_generated_classes_read_samples_written_by_the_original(generated_module):
    record = schema_record(Every, name="com.example.every", version="1.0.0")
    cls = generated_module(generate_python(record)).Every
    original = every_sample()
    decoded = cls.from_bytes(original.to_bytes())
    np.testing.assert_array_equal(decoded.features, original.features)
    assert decoded.origin.x == 1 and decoded.path[1].y == 4.0
    assert Every.from_bytes(decoded.to_bytes()) == original


def test_codegen_for_the_other_clients_schema(generated_module):
    source = generate_python(THEIR_REFERENCE_EXAMPLE)
    module = generated_module(source)
    cls = module.ImageSample
    assert same_fields(sample_type_from_record(THEIR_REFERENCE_EXAMPLE), cls)
    assert "image: Annotated[NDArray[np.uint8], {'shape': (None, None, 3)}] = dataclasses.field(" in source
    rgb = np.ones((1, 1, 3), dtype=np.uint8)
    sample = cls.from_bytes(msgpack.packb({"image": npy(rgb), "label": "one"}))
    assert sample.confidence is None and sample.label == "one"


def test_a_class_name_can_be_chosen_and_awkward_names_become_identifiers(generated_module):
    record = schema_record(Every, name="my dataset: v2 images", version="1.0.0")
    assert "class MyDatasetV2Images:" in generate_python(record)
    module = generated_module(generate_python(record, class_name="Frame"))
    assert [f.name for f in sample_fields(module.Frame)][:3] == ["text", "count", "score"]


def test_nested_defaults_are_written_as_constructor_calls(generated_module):
    from tests.test_schema_jsonschema import Framed

    record = schema_record(Framed, name="com.example.framed", version="1.0.0")
    source = generate_python(record)
    assert "default_factory=lambda: Point(x=1, y=1.5)" in source
    module = generated_module(source)
    assert module.Framed().corner == module.Point(1, 1.5)


def test_an_optional_array_with_a_shape_is_written_so_that_python_3_11_can_import_it(generated_module):
    from atdata_core import packable

    @packable
    class Masked:
        mask: Annotated[Optional[NDArray[np.uint8]], {"shape": (None, 3)}] = None

    record = schema_record(Masked, name="com.example.masked", version="1.0.0")
    source = generate_python(record)
    assert "mask: Annotated[NDArray[np.uint8] | None, {'shape': (None, 3)}] = None" in source
    cls = generated_module(source).Masked
    assert same_fields(sample_type_from_record(record), cls)
    assert fmt.schema_from_type(cls) == record["schema"]
