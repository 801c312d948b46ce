"""A third-party plugin in one file: a storage backend for ``vault://`` URLs, registered and used.

Run with ``python examples/third_party_plugin.py``. The plugin keeps shards in
a folder named by its own typed setting (``[vault] root``, or
``ATDATA_VAULT_ROOT``): it writes the five storage primitives, inherits
``glob``, ``exists`` and brace expansion from ``StorageBase``, and registers
through the same hook as the built-in backends. A real plugin lives in its own
distribution and names its hooks module in an entry point::

    [project.entry-points.atdata]
    vault = "atdata_vault"

Here it is registered for a ``with`` block instead, as a plugin's tests do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import attrs
import numpy as np
from numpy.typing import NDArray

import atdata_core
from atdata_core.errors import StorageError, StorageNotFound
from atdata_core.plugins import (
    StorageBackendSpec,
    StorageBase,
    hookimpl,
    plugin_registered,
    plugin_report,
    storage_backend,
)


@attrs.frozen
class VaultSettings:
    """The ``[vault]`` section: the folder ``vault://`` URLs live under."""

    root: str = ""


class VaultStorage(StorageBase):
    """``vault://<path>`` is ``<root>/<path>`` on this machine."""

    def __init__(self, settings: VaultSettings):
        if not settings.root:
            raise StorageError("vault:// needs a folder: set [vault] root or ATDATA_VAULT_ROOT")
        self.root = Path(settings.root)

    def _path(self, url: str) -> Path:
        if not url.startswith("vault://"):
            raise StorageError(f"not a vault:// URL: {url!r}")
        relative = url[len("vault://"):].strip("/")
        if ".." in relative.split("/"):
            raise StorageError(f"{url!r} leaves the vault")
        return self.root / relative

    def open(self, url: str) -> BinaryIO:
        try:
            return open(self._path(url), "rb")
        except FileNotFoundError:
            raise StorageNotFound(f"no object at {url}") from None

    def size(self, url: str) -> int | None:
        try:
            return self._path(url).stat().st_size
        except FileNotFoundError:
            raise StorageNotFound(f"no object at {url}") from None

    def put(self, local_path: str | os.PathLike[str], url: str) -> str:
        target = self._path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(local_path, partial)
        os.replace(partial, target)  # readers never see half an object
        return url

    def delete(self, url: str) -> None:
        try:
            self._path(url).unlink()
        except FileNotFoundError:
            raise StorageNotFound(f"no object at {url}") from None

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if folder.is_file():
            return [prefix.rstrip("/")]
        found = [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial")]
        return sorted("vault://" + p.relative_to(self.root).as_posix() for p in found)


class VaultPlugin:
    """The hooks module of the plugin (here an object; in a distribution, a module)."""

    @hookimpl
    def atdata_storage_backends(self) -> list[StorageBackendSpec]:
        return [
            StorageBackendSpec(
                name="vault",
                schemes=("vault",),
                factory=VaultStorage,  # a real plugin names "atdata_vault.storage:VaultStorage"
                settings=VaultSettings,
                section="vault",
                description="shards in a folder of this machine: vault://<path>",
            )
        ]


@atdata_core.packable
class Spectrum:
    values: NDArray[np.float32]
    instrument: str


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        os.environ["ATDATA_VAULT_ROOT"] = root  # the typed setting, as a user would set it
        with plugin_registered(VaultPlugin(), name="vault"):
            info = next(p for p in plugin_report() if p.name == "vault")
            print(f"plugin {info.name!r}: {info.status}, hooks {', '.join(info.hooks)}")
            print(f"vault:// is served by {type(storage_backend('vault://x')).__name__}")

            rng = np.random.default_rng(0)
            with atdata_core.ShardWriter("vault://spectra/run-%06d.tar", maxcount=40) as sink:
                for i in range(100):
                    sink.write(Spectrum(rng.random(64, dtype=np.float32), f"instrument-{i % 3}"))
            print(f"wrote {len(sink.shards)} shards: {', '.join(s.url for s in sink.shards)}")

            dataset = atdata_core.Dataset[Spectrum]("vault://spectra/run-*.tar")
            samples = list(dataset.ordered())
            print(f"read back {len(samples)} samples through the glob; first {samples[0].instrument}, "
                  f"values {samples[0].values.dtype}{samples[0].values.shape}")
            on_disk = sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*.tar"))
            print(f"on disk under [vault] root: {on_disk}")
        del os.environ["ATDATA_VAULT_ROOT"]  # with the plugin gone, nothing reads [vault]
        print(f"outside the block vault:// is unknown again: {_scheme_known('vault://x')}")


def _scheme_known(url: str) -> bool:
    from atdata_core.errors import MissingImplementation

    try:
        storage_backend(url)
    except MissingImplementation:
        return False
    return True


if __name__ == "__main__":
    main()
