"""atdata-hf: Hugging Face datasets as typed atdata shards, and back.

This is the module the plugin's entry point names, so atdata imports it at
discovery: it only registers the ``atdata hf`` commands. ``datasets`` and
pyarrow are imported when a conversion runs.

- :func:`from_hf` (``atdata hf import``): a sample class generated from the
  dataset's ``features``, shards written with ``ShardWriter``, optionally
  published with the schema.
- :func:`to_hf`: an atdata dataset as a Hugging Face ``Dataset`` or
  ``IterableDataset`` with the same features.
- :func:`sample_type_from_features` and :func:`features_of`: the mapping
  between the two, on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atdata_core.plugins import hookimpl

__version__ = "0.1.0"
__all__ = [
    "HfImport",
    "UnsupportedFeature",
    "atdata_cli_commands",
    "features_of",
    "from_hf",
    "sample_type_from_features",
    "to_hf",
]

_LAZY = {
    "HfImport": "atdata_hf.importing",
    "from_hf": "atdata_hf.importing",
    "to_hf": "atdata_hf.exporting",
    "UnsupportedFeature": "atdata_hf.features",
    "features_of": "atdata_hf.features",
    "sample_type_from_features": "atdata_hf.features",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atdata_hf' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from atdata_hf.exporting import to_hf
    from atdata_hf.features import UnsupportedFeature, features_of, sample_type_from_features
    from atdata_hf.importing import HfImport, from_hf


@hookimpl
def atdata_cli_commands() -> list[Any]:
    from atdata_hf.cli import hf

    return [hf]
