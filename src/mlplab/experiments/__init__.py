"""Declarative experiments: TOML specs, cells, cached parallel sweeps, and the reports'
reproductions (``two-hidden-layers``, ``ovr-logistic``, ``relu-softmax-full-batch``,
``mnist-best``). See :mod:`mlplab.experiments.spec` for the spec format.
"""

from mlplab.experiments.spec import Spec, builtin_names, from_dict, load_spec

__all__ = ["Spec", "builtin_names", "from_dict", "load_spec", "run_experiment"]


def run_experiment(*args, **kwargs):
    from mlplab.experiments.runner import run_experiment as _run

    return _run(*args, **kwargs)
