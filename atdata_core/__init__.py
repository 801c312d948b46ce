"""atdata-core: typed, federated ML datasets.

Samples are typed classes stored as WebDataset tar shards of msgpack maps;
schemas, dataset entries and lenses are AT Protocol records. Public names are
imported lazily so ``import atdata_core`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "packable": "sample",
    "DictSample": "sample",
    "is_packable": "sample",
    "sample_fields": "sample",
    "make_sample_type": "sample",
    "encode_ndarray": "codec",
    "decode_ndarray": "codec",
    "ShardWriter": "shards",
    "ShardInfo": "shards",
    "Dataset": "dataset",
    "SampleBatch": "dataset",
    "Pipeline": "dataset",
    "lens": "lenses._decorator",
    "Lens": "lenses",
    "LensGraph": "lenses",
    "check_lens_laws": "lenses",
    "load_config": "config",
    "load": "_loading",
    "load_lens": "_loading",
    "resolve": "_loading",
    "publish_schema": "publish",
    "publish_dataset": "publish",
    "publish_lens": "publish",
    "publish_label": "publish",
    "list_datasets": "discover",
    "list_schemas": "discover",
    "list_lenses": "discover",
    "list_labels": "discover",
}

__all__ = sorted([*_LAZY, "errors", "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name == "errors":
            from . import errors

            return errors
        raise AttributeError(f"module 'atdata_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from ._loading import load, load_lens, resolve
    from .codec import decode_ndarray, encode_ndarray
    from .config import load_config
    from .dataset import Dataset, Pipeline, SampleBatch
    from .discover import list_datasets, list_labels, list_lenses, list_schemas
    from .lenses import Lens, LensGraph, check_lens_laws
    from .lenses._decorator import lens
    from .publish import publish_dataset, publish_label, publish_lens, publish_schema
    from .sample import DictSample, is_packable, make_sample_type, packable, sample_fields
    from .shards import ShardInfo, ShardWriter
