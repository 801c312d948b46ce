"""``atdata codegen``: modules and packages that pass ruff and mypy --strict, import, and round-trip samples;
.proto files that protoc compiles; record text escaped in all of them."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.typing import NDArray

from atdata_core import packable, sample_fields
from atdata_core.cli import cli
from atdata_core.schema import JsonSchemaFormat, check_compatible, schema_record
from tests.test_schema_jsonschema import Every, every_sample, same_fields

ROOT = Path(__file__).resolve().parents[1]
fmt = JsonSchemaFormat()


@packable
class Box:
    """A bounding box."""

    x: float
    y: float
    size: Annotated[NDArray[np.float32], {"shape": (2,)}]


@packable
class Detection:
    """Detections in one image."""

    image: Annotated[NDArray[np.uint8], {"shape": (None, None, 3)}]
    boxes: list[Box]
    scores: dict[str, float]
    mask: Annotated[NDArray[np.bool_] | None, {"shape": (None, None)}] = None
    label: str = dataclasses.field(default="unknown", metadata={"description": "what was detected"})
    tags: list[str] = dataclasses.field(default_factory=list)


@packable
class DetectionV2:
    """Detections, with a source."""

    image: Annotated[NDArray[np.uint8], {"shape": (None, None, 3)}]
    boxes: list[Box]
    scores: dict[str, float]
    source: str
    mask: Annotated[NDArray[np.bool_] | None, {"shape": (None, None)}] = None


HOSTILE = 'end """ \\ \x1b[2J \u202e evil\r\n\u2028 import os; os.system("x") # */ //'


def detection(seed: int = 0) -> Detection:
    rng = np.random.default_rng(seed)
    return Detection(
        image=rng.integers(0, 255, (3, 4, 3), dtype=np.uint8),
        boxes=[Box(1.0, 2.5, np.array([3, 4], dtype=np.float32))],
        scores={"cat": 0.75},
        mask=np.ones((3, 4), dtype=bool),
        label="cat",
    )


def write_record(folder: Path, name: str, record: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps(record))
    return path


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def ruff(*paths: Path) -> None:
    """``ruff check`` with its default rules and common extra families: not line length (record text is long),
    not pep8-naming (versioned class names, ``ImageV1_0_0``, keep their underscores).

    Run from the generated files' folder, as in a project that uses them: there atdata_core and numpy
    are both third-party imports (inside this repository, ruff would take atdata_core for first-party).
    """
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--extend-select",
         "E,W,F,I,UP,B,RUF,PIE,C4,SIM", "--extend-ignore", "E501", *map(str, paths)],
        capture_output=True, text=True, cwd=paths[0] if paths[0].is_dir() else paths[0].parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mypy-cache")


def mypy(cache: Path, *paths: Path, cwd: Path) -> None:
    # The core is found from its source folder (an editable install hides it from mypy); its own
    # modules are analysed for types but their messages are not the generated module's.
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
         "--cache-dir", str(cache), *map(str, paths)],
        capture_output=True, text=True, env=env, cwd=cwd,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def importable(tmp_path, monkeypatch):
    """Put a folder on sys.path for the test and forget what was imported from it."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


# ====================================================================== one module


def test_a_module_from_a_record_file_passes_ruff_and_mypy_imports_and_round_trips(importable, mypy_cache):
    record = schema_record(Detection, name="com.example.detection", version="1.0.0", description="Detections.")
    ref = write_record(importable, "detection.json", record)
    result = run("codegen", str(ref), "-o", str(importable / "detection_types.py"))
    assert result.exit_code == 0, result.output
    source = (importable / "detection_types.py").read_text()
    assert "class Box:" in source and "class Detection:" in source
    assert source.index("class Box:") < source.index("class Detection:")  # nested types first
    assert '"""Detections."""' in source and '"""A bounding box."""' not in source  # nested docs are the schema's
    assert "# NDArray: dtype uint8, shape (any, any, 3)" in source
    assert "# NDArray: dtype float32, shape (2,)" in source
    assert "metadata={'description': 'what was detected'}" in source

    ruff(importable / "detection_types.py")
    usage = importable / "use_detection.py"
    usage.write_text(
        "import numpy as np\n\n"
        "from detection_types import Box, Detection\n\n"
        "box = Box(x=1.0, y=2.0, size=np.zeros(2, dtype=np.float32))\n"
        "sample = Detection(image=np.zeros((2, 2, 3), dtype=np.uint8), boxes=[box], scores={'a': 1.0})\n"
        "label: str = sample.label\n"
        "mask: np.ndarray | None = sample.mask\n"
    )
    mypy(mypy_cache, importable / "detection_types.py", usage, cwd=importable)

    module = importlib.import_module("detection_types")
    assert same_fields(Detection, module.Detection)
    assert module.Detection.__atdata_schema__ == {"id": "com.example.detection", "version": "1.0.0"}
    assert fmt.schema_from_type(module.Detection) == record["schema"]
    original = detection()
    decoded = module.Detection.from_bytes(original.to_bytes())  # written by the original, read by the generated
    assert decoded.label == "cat" and decoded.boxes[0].y == 2.5
    np.testing.assert_array_equal(decoded.image, original.image)
    assert Detection.from_bytes(decoded.to_bytes()) == original  # and back


def test_every_field_type_passes_ruff_and_mypy(importable, mypy_cache):
    record = schema_record(Every, name="com.example.every", version="1.0.0")
    ref = write_record(importable, "every.json", record)
    assert run("codegen", str(ref), "-o", str(importable / "every_types.py"), "--class-name", "Everything").exit_code == 0
    ruff(importable / "every_types.py")
    mypy(mypy_cache, importable / "every_types.py", cwd=importable)
    module = importlib.import_module("every_types")
    assert same_fields(Every, module.Everything)
    assert Every.from_bytes(module.Everything.from_bytes(every_sample().to_bytes()).to_bytes()) == every_sample()


def test_stdout_and_an_existing_file(tmp_path):
    record = schema_record(Box, name="com.example.box", version="1.0.0")
    ref = write_record(tmp_path, "box.json", record)
    result = run("codegen", str(ref), "-o", "-")
    assert result.exit_code == 0 and result.output.startswith('"""Sample type Box for schema com.example.box 1.0.0')
    out = tmp_path / "box.py"
    out.write_text("# mine\n")
    refused = run("codegen", str(ref), "-o", str(out))
    assert refused.exit_code == 1 and "exists; pass --force" in refused.output
    assert out.read_text() == "# mine\n"
    assert run("codegen", str(ref), "-o", str(out), "--force").exit_code == 0
    assert "class Box:" in out.read_text()


# ====================================================================== a package


def test_several_schemas_make_a_package_with_versions_side_by_side(importable, mypy_cache):
    v1 = schema_record(Detection, name="com.example.detection", version="1.0.0")
    v2 = schema_record(DetectionV2, name="com.example.detection", version="2.0.0")
    box = schema_record(Box, name="com.example.box", version="1.0.0")
    refs = [write_record(importable, f"{n}.json", r) for n, r in (("v1", v1), ("v2", v2), ("box", box))]
    out = importable / "schemas"
    result = run("codegen", *map(str, refs), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["__init__.py", "com_example_box.py", "com_example_detection.py"]
    detection_source = (out / "com_example_detection.py").read_text()
    assert "class DetectionV1_0_0:" in detection_source and "class DetectionV2_0_0:" in detection_source
    assert "class BoxV1_0_0:" in detection_source and "class BoxV2_0_0:" in detection_source  # nested, per version

    ruff(out)
    mypy(mypy_cache, out, cwd=importable)
    package = importlib.import_module("schemas")
    assert package.__all__ == ["BoxV1_0_0", "DetectionV1_0_0", "DetectionV2_0_0"]
    assert package.DetectionV2_0_0.__atdata_schema__["version"] == "2.0.0"
    # Nested classes carry the version in their names; the fields are the schema's.
    check_compatible(package.DetectionV1_0_0, v1)
    check_compatible(package.DetectionV2_0_0, v2)
    assert [f.name for f in sample_fields(package.DetectionV2_0_0)] == [f.name for f in sample_fields(DetectionV2)]
    # samples of both versions at once
    old = package.DetectionV1_0_0.from_bytes(detection().to_bytes())
    assert old.label == "cat"
    assert Box.from_bytes(package.BoxV1_0_0.from_bytes(Box(1.0, 2.0, np.ones(2, np.float32)).to_bytes()).to_bytes()).y == 2.0


def test_class_name_is_for_one_module_only(tmp_path):
    a = write_record(tmp_path, "a.json", schema_record(Box, name="com.example.box", version="1.0.0"))
    b = write_record(tmp_path, "b.json", schema_record(Box, name="com.example.box", version="1.1.0"))
    result = run("codegen", str(a), str(b), "-o", str(tmp_path / "x.py"))
    assert result.exit_code == 2 and "give a folder" in result.output
    assert run("codegen", str(a), str(b), "-o", str(tmp_path / "pkg"), "--class-name", "X").exit_code == 2


# ====================================================================== hostile text


def hostile_record() -> dict:
    record = schema_record(Box, name="com.example.box", version="1.0.0")
    record["description"] = HOSTILE
    props = record["schema"]["properties"]
    props["x"]["description"] = HOSTILE
    props["note"] = {"type": "string", "default": HOSTILE, "description": HOSTILE}
    return record


def test_hostile_text_in_a_schema_is_escaped_and_the_module_still_passes_the_checks(importable, mypy_cache):
    marker = importable / "MARKER"
    record = hostile_record()
    record["schema"]["properties"]["note"]["default"] = f"{HOSTILE}\n__import__('pathlib').Path({str(marker)!r}).touch()"
    ref = write_record(importable, "hostile.json", record)
    assert run("codegen", str(ref), "-o", str(importable / "hostile_types.py")).exit_code == 0
    ruff(importable / "hostile_types.py")
    mypy(mypy_cache, importable / "hostile_types.py", cwd=importable)
    module = importlib.import_module("hostile_types")
    assert not marker.exists()
    assert module.Box(x=1.0, y=2.0, size=np.zeros(2, np.float32)).note == record['schema']['properties']['note']['default']
    assert inspect.cleandoc(module.Box.__doc__) == inspect.cleandoc(HOSTILE)  # escaped, not altered


def test_a_record_name_that_cannot_be_a_class_is_refused_and_nothing_is_written(tmp_path):
    record = schema_record(Box, name="com.example.box", version="1.0.0")
    record["schema"]["properties"]["class"] = {"type": "string"}
    ref = write_record(tmp_path, "bad.json", record)
    result = run("codegen", str(ref), "-o", str(tmp_path / "bad.py"))
    assert result.exit_code == 1 and "not a Python identifier" in result.output
    assert not (tmp_path / "bad.py").exists()


# ====================================================================== .proto


def protoc(root: Path, files: list[Path]) -> None:
    from grpc_tools import protoc as grpc_protoc

    out = root / "protoc-out"
    out.mkdir(exist_ok=True)
    # python -m grpc_tools.protoc finds the well-known types itself; main() needs -I to its _proto folder.
    include = Path(grpc_protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{root}", f"-I{include}", f"--python_out={out}", *(str(f.relative_to(root)) for f in files)]
    assert grpc_protoc.main(args) == 0, "protoc refused the generated files"


def test_proto_for_a_json_schema_compiles_with_protoc(tmp_path):
    record = schema_record(Every, name="com.example.every", version="1.0.0", description="Every type.")
    ref = write_record(tmp_path, "every.json", record)
    out = tmp_path / "protos"
    result = run("codegen", str(ref), "--lang", "proto", "-o", str(out))
    assert result.exit_code == 0, result.output
    proto = out / "com" / "example" / "every" / "v1_0_0.proto"
    text = proto.read_text()
    assert "package com.example.every.v1_0_0;" in text
    assert "message Every {" in text and "message Point {" in text and "message NDArray {" in text
    assert "NDArray features = 7;  // dtype float32, shape (any, 64)" in text
    assert "repeated EveryGridItem grid = 11;" in text  # list[list[int]] needs a wrapper
    assert "optional string caption = 17;" in text
    assert "map<string, double> weights = 13;" in text
    assert "google.protobuf.Value anything = 16;" in text
    protoc(out, [proto])


def test_proto_of_hostile_text_keeps_it_in_comments_and_compiles(tmp_path):
    ref = write_record(tmp_path, "hostile.json", hostile_record())
    out = tmp_path / "box.proto"
    assert run("codegen", str(ref), "--lang", "proto", "-o", str(out)).exit_code == 0
    text = out.read_text()
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert "// end \"\"\" \\ \\x1b[2J \\u202e evil" in text
    protoc(tmp_path, [out])


def test_proto_uses_a_format_that_renders_its_own(tmp_path):
    pytest.importorskip("atdata_schema_protobuf", reason="the protobuf format plugin renders its own .proto files")
    from atdata_core.schema import format_for_record, proto_files

    record = schema_record(Box, name="com.example.box", version="1.0.0", format="protobuf")
    own = format_for_record(record).proto_files(record["schema"])
    assert proto_files(record) == own
    ref = write_record(tmp_path, "box.json", record)
    out = tmp_path / "protos"
    assert run("codegen", str(ref), "--lang", "proto", "-o", str(out)).exit_code == 0
    written = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.proto")}
    assert written == own
    protoc(out, [out / path for path in written])


def test_proto_refuses_names_protobuf_cannot_carry():
    from atdata_core.errors import SchemaError
    from atdata_core.schema import render_proto3

    record = schema_record(Box, name="com.example.box", version="1.0.0")
    record["schema"]["properties"]["größe"] = {"type": "integer"}
    with pytest.raises(SchemaError, match="not an ASCII identifier"):
        render_proto3(record)
    record = schema_record(Box, name="com.example.box", version="1.0.0")
    record["schema"]["properties"]["size_x"] = {"type": "integer"}
    record["schema"]["properties"]["sizeX"] = {"type": "integer"}
    with pytest.raises(SchemaError, match="same JSON name"):
        render_proto3(record)
