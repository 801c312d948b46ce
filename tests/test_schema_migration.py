"""Migration paths between versions of one schema id, planned over an embedded index (no network).

The sandbox story (alice, bob, published lenses and trust) is in
``tests/test_evolution.py``; here the planning rules: which version a class
stands for, which lenses connect versions, and what a missing path says.
"""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest

from atdata_core import lens, packable
from atdata_core.errors import IncompatibleSchema, NoMigrationPath
from atdata_core.index.sqlite import SqliteIndex
from atdata_core.lenses import LensGraph
from atdata_core.lenses._migration import plan_migration, retype
from atdata_core.plugins import IndexedRecord
from atdata_core.schema import sample_type_from_record, schema_identity, schema_record

OWNER = "did:plc:owner0000000000000000"
SCHEMA = "science.alt.dataset.schema"
ID = "com.example.temp"


@packable
class Station:
    name: str


@packable
class TempV1:
    __atdata_schema__: ClassVar[dict[str, str]] = {"id": ID, "version": "1.0.0"}
    celsius: float
    station: Station


@packable
class TempV1_1:
    __atdata_schema__: ClassVar[dict[str, str]] = {"id": ID, "version": "1.1.0"}
    celsius: float
    station: Station
    note: str | None = None


@packable
class TempV2:
    __atdata_schema__: ClassVar[dict[str, str]] = {"id": ID, "version": "2.0.0"}
    kelvin: float
    station: Station


@packable
class TempV3:
    __atdata_schema__: ClassVar[dict[str, str]] = {"id": ID, "version": "3.0.0"}
    kelvin: float
    place: str


@lens(register=False)
def v1_to_v2(t: TempV1) -> TempV2:
    return TempV2(kelvin=t.celsius + 273.0, station=t.station)


@v1_to_v2.putter
def v1_to_v2_put(t: TempV2, s: TempV1) -> TempV1:
    return TempV1(celsius=t.kelvin - 273.0, station=t.station)


@lens(register=False)
def v2_to_v3(t: TempV2) -> TempV3:
    return TempV3(kelvin=t.kelvin, place=t.station.name)


@v2_to_v3.putter
def v2_to_v3_put(t: TempV3, s: TempV2) -> TempV2:
    return TempV2(kelvin=t.kelvin, station=Station(t.place))


@lens(register=False)
def v1_to_v2_rounded(t: TempV1) -> TempV2:
    return TempV2(kelvin=float(round(t.celsius + 273.0)), station=t.station)


@pytest.fixture
def index(tmp_path, monkeypatch):
    monkeypatch.delenv("ATDATA_LENS_TRUSTED_DIDS", raising=False)
    provider = SqliteIndex(tmp_path / "index.db")
    for cls, version in ((TempV1, "1.0.0"), (TempV1_1, "1.1.0"), (TempV2, "2.0.0"), (TempV3, "3.0.0")):
        provider.put_record(f"at://{OWNER}/{SCHEMA}/{ID}:{version}", schema_record(cls, name=ID, version=version))
    yield provider
    provider.close()


def schema_of(index: SqliteIndex, version: str) -> IndexedRecord:
    return index.get_record(f"at://{OWNER}/{SCHEMA}/{ID}:{version}")


def sample_v1(index: SqliteIndex, celsius: float = 20.5, station: str = "oslo"):
    """A sample as load() reads a 1.0.0 dataset: of the class built from the record, not TempV1."""
    built = sample_type_from_record(dict(schema_of(index, "1.0.0").value))
    return built.from_bytes(TempV1(celsius=celsius, station=Station(station)).to_bytes())


def test_a_class_of_the_datasets_own_version_needs_no_migration(index):
    assert plan_migration(index, schema_of(index, "1.0.0"), TempV1, graph=LensGraph()) is None


def test_a_class_of_a_newer_version_gets_the_registered_path_applied(index):
    migration = plan_migration(index, schema_of(index, "1.0.0"), TempV2, graph=LensGraph([v1_to_v2]))
    assert migration.view is TempV2 and migration.name == f"migrate {ID} 1.0.0 -> 2.0.0"
    sample = sample_v1(index)
    migrated = migration.get(sample)
    assert type(migrated) is TempV2 and migrated.kelvin == 293.5 and migrated.station == Station("oslo")
    # the putter goes back to the class the data was read as
    back = migration.put(TempV2(kelvin=300.0, station=Station("rome")), sample)
    assert type(back) is migration.source and back.celsius == 27.0 and back.station.name == "rome"


def test_paths_of_several_hops_are_composed(index):
    migration = plan_migration(index, schema_of(index, "1.0.0"), TempV3, graph=LensGraph([v1_to_v2, v2_to_v3]))
    assert migration.name == f"migrate {ID} 1.0.0 -> 2.0.0 -> 3.0.0"
    migrated = migration.get(sample_v1(index, 10.0, "bergen"))
    assert (migrated.kelvin, migrated.place) == (283.0, "bergen")


def test_a_missing_path_names_both_versions_and_the_lenses_found(index):
    with pytest.raises(NoMigrationPath) as caught:
        plan_migration(index, schema_of(index, "2.0.0"), TempV3, graph=LensGraph([v1_to_v2]))
    message = str(caught.value)
    assert f"no migration path from {ID} 2.0.0 (the dataset's version) to 3.0.0 (the class's version)" in message
    assert "1.0.0 -> 2.0.0 (lens tests.test_schema_migration:v1_to_v2 (registered locally))" in message
    assert "cannot read 2.0.0 samples as they are" in message


def test_a_compatible_class_of_another_version_reads_directly_when_no_lens_connects_them(index):
    # 1.1.0 only added an optional field: a 1.1.0 class reads 1.0.0 samples as they are.
    assert plan_migration(index, schema_of(index, "1.0.0"), TempV1_1, graph=LensGraph()) is None


def test_a_class_naming_no_version_is_taken_for_the_highest_version_it_reads(index):
    @packable
    class Anonymous:
        kelvin: float
        station: Station

    assert schema_identity(Anonymous) is None
    migration = plan_migration(index, schema_of(index, "1.0.0"), Anonymous, graph=LensGraph([v1_to_v2]))
    assert type(migration.get(sample_v1(index))) is Anonymous

    @packable
    class Unrelated:
        text: str

    with pytest.raises(IncompatibleSchema, match="Unrelated cannot read samples"):
        plan_migration(index, schema_of(index, "1.0.0"), Unrelated, graph=LensGraph([v1_to_v2]))


def test_a_lens_you_pass_wins_over_one_registered_for_the_same_versions(index):
    migration = plan_migration(
        index, schema_of(index, "1.0.0"), TempV2, lenses=[v1_to_v2_rounded], graph=LensGraph([v1_to_v2])
    )
    assert migration.get(sample_v1(index, 20.4)).kelvin == 293.0  # rounded: the lens passed explicitly ran
    assert migration.provenance[0].endswith("(passed by you)")


def test_the_migration_lens_pickles_for_data_loader_workers(index):
    migration = plan_migration(index, schema_of(index, "1.0.0"), TempV3, graph=LensGraph([v1_to_v2, v2_to_v3]))
    copy = pickle.loads(pickle.dumps(migration))
    assert copy.get(sample_v1(index, 1.0, "x")) == TempV3(kelvin=274.0, place="x")


def test_retype_copies_fields_by_name_nested_samples_too():
    @packable
    class OtherStation:
        name: str

    @packable
    class Other:
        celsius: float
        station: OtherStation
        extra: int = 0

    value = retype(Other(celsius=1.5, station=OtherStation("a"), extra=3), TempV1)
    assert value == TempV1(celsius=1.5, station=Station("a"))
    with pytest.raises(Exception, match="has no field 'kelvin'"):
        retype(value, TempV2)


def test_a_lens_record_to_the_same_id_in_another_repository_is_not_a_migration(index):
    other = "did:plc:other0000000000000000"
    code = {"repository": "https://example.com/x.git", "commit": "a" * 40, "path": "x/m.py:f", "language": "python"}
    index.put_record(f"at://{OWNER}/science.alt.dataset.lens/3lensrecord22", {
        "$type": "science.alt.dataset.lens", "name": "to_their_v2",
        "sourceSchema": f"at://{OWNER}/{SCHEMA}/{ID}:1.0.0", "targetSchema": f"at://{other}/{SCHEMA}/{ID}:2.0.0",
        "getterCode": code, "putterCode": code, "createdAt": "2026-01-01T00:00:00.000Z",
    })
    with pytest.raises(NoMigrationPath, match=f"no migration lenses between versions of {ID} were found"):
        plan_migration(index, schema_of(index, "1.0.0"), TempV2, graph=LensGraph())
