"""Loading a dataset written with version 1.0.0 of a schema into the class of version 2.0.0.

Run with ``python examples/lens_migration.py`` (needs ``atdata-storage-blob``).
Alice publishes ``test.example.reading`` 1.0.0 (celsius), a dataset of it, and
then 2.0.0 (kelvin, and where each number came from): a major change, so it
needs a major version. Bob's code is written against 2.0.0. He loads alice's
1.0.0 dataset into his 2.0.0 class with a *migration lens* of his own: a
lens whose source and target are two versions of one schema id. Lenses of your
own run without any trust setting; lenses other people published run only
when your trust policy allows them (see the schemas guide).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

import atdata_core
from atdata_core import LensGraph, ShardWriter, lens, packable
from atdata_core.atproto import login
from atdata_core.errors import SchemaError

from _local_federation import local_federation

SCHEMA_ID = "test.example.reading"


@packable
class ReadingV1:
    """One thermometer reading."""

    __atdata_schema__: ClassVar[dict[str, str]] = {"id": SCHEMA_ID, "version": "1.0.0"}
    celsius: float
    station: str


@packable
class ReadingV2:
    """One thermometer reading in kelvin, with where the number came from."""

    __atdata_schema__: ClassVar[dict[str, str]] = {"id": SCHEMA_ID, "version": "2.0.0"}
    kelvin: float
    station: str
    source: str = "measured"


def main() -> None:
    with local_federation() as federation:
        alice_handle, alice_password = federation.account("alice")
        bob_handle, bob_password = federation.account("bob")

        federation.become("alice")
        alice = login(alice_handle, alice_password)
        v1 = atdata_core.publish_schema(alice, ReadingV1, schema_id=SCHEMA_ID, version="1.0.0")
        rng = np.random.default_rng(3)
        with ShardWriter(federation.folder / "readings-%06d.tar", maxcount=100) as sink:
            for i in range(250):
                sink.write(ReadingV1(round(float(rng.normal(12, 6)), 2), f"station-{i % 4}"))
        entry = atdata_core.publish_dataset(alice, "city-temperatures", sink.shards, schema=v1, storage="blob")
        try:
            atdata_core.publish_schema(alice, ReadingV2, schema_id=SCHEMA_ID, version="1.1.0")
        except SchemaError as err:
            print("publishing the change as 1.1.0 is refused:\n  " + "\n  ".join(str(err).splitlines()[:3]))
        v2 = atdata_core.publish_schema(alice, ReadingV2, schema_id=SCHEMA_ID, version="2.0.0")
        print(f"alice published\n  schema {v1.uri}\n  schema {v2.uri}\n  entry  {entry.uri}")

        federation.become("bob")
        login(bob_handle, bob_password)
        graph = LensGraph()  # bob's own lenses, kept out of the process-wide graph

        @lens(graph=graph)
        def upgrade(reading: ReadingV1) -> ReadingV2:
            return ReadingV2(kelvin=round(reading.celsius + 273.15, 2), station=reading.station, source="celsius")

        @upgrade.putter
        def downgrade(view: ReadingV2, source: ReadingV1) -> ReadingV1:
            return ReadingV1(celsius=round(view.kelvin - 273.15, 2), station=view.station)

        as_v1 = list(atdata_core.load(f"@{alice_handle}/city-temperatures").ordered())
        migrated = list(atdata_core.load(f"@{alice_handle}/city-temperatures", ReadingV2, lenses=[upgrade]).ordered())
        print(f"bob loaded {len(migrated)} readings as {type(migrated[0]).__name__} "
              f"(schema {ReadingV2.__atdata_schema__['version']}) from a {ReadingV1.__atdata_schema__['version']} dataset")
        print(f"  first: {as_v1[0].celsius} C at {as_v1[0].station} -> {migrated[0].kelvin} K, "
              f"source {migrated[0].source!r}")
        kept = all(abs(a.celsius + 273.15 - b.kelvin) < 0.011 for a, b in zip(as_v1, migrated, strict=True))
        print(f"  every reading converted: {kept}")


if __name__ == "__main__":
    main()
