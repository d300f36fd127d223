"""One module per experiment runner. Each module declares

* ``OPTIONS``: the schema of the spec's ``[options]`` table (``{key: (default, check)}``);
* ``cells(spec, seeds) -> list[Cell]``: the work, as cells of the sweep machinery;
* ``report(spec, results, out) -> ReportParts``: the comparison table (published, reproduced,
  corrected), further report blocks and summary entries;
* ``RESULTS``: per cell function, the shape of the result it returns, with the types of the
  values ``report`` reads (:mod:`mlplab.experiments.shapes`): a cached result that does not
  match is damage, and its cell runs again;
* optionally ``check_spec(spec)`` for cross-key validation, and ``check_data(spec)`` for checks
  against the data (the runner calls it before any cell runs or anything is written);
* optionally ``MODEL_NOUN``: what the runner calls the models a cell trains together and
  records one by one in its result's ``models`` (default "model"), for the counts of those
  that diverged in cells that finished (the end-of-run line, the report's "Cells" tables).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mlplab.errors import ConfigError

RUNNERS = {
    "generic": "generic",
    "two-hidden-layers": "two_hidden",
    "ovr-logistic": "ovr_logistic",
    "relu-softmax": "relu_softmax",
    "mnist-best": "mnist_best",
}


def get_protocol(name: str) -> ModuleType:
    if name not in RUNNERS:
        raise ConfigError(f"unknown runner {name!r}; valid: {', '.join(RUNNERS)}")
    return importlib.import_module(f"mlplab.experiments.protocols.{RUNNERS[name]}")
