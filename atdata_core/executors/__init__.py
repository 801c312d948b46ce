"""Built-in lens executors.

:class:`PythonLensExecutor` runs Python lens code that is installed locally and
matches the record's code reference; it refuses everything else (DESIGN D3).
It is registered through the ``atdata_lens_executors`` hook under the name
``python``, built from :class:`PythonExecutorSettings` (the ``[lens]``
configuration section).
"""

from __future__ import annotations

from atdata_core.executors._python import PythonLensExecutor
from atdata_core.executors._settings import PythonExecutorSettings
from atdata_core.executors._trust import TrustPolicy

__all__ = ["PythonExecutorSettings", "PythonLensExecutor", "TrustPolicy"]
