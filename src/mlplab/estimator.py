"""scikit-learn compatible classifiers built on :class:`mlplab.network.MLP`.

* :class:`MLPClassifier`: a multilayer perceptron with scikit-learn's contract and
  hyperparameter names (``hidden_layer_sizes``, ``alpha``, ``learning_rate_init``, ...).
* :class:`OneVsRestLogisticRegression`: one sigmoid neuron per class, each trained on its
  class against the rest (optionally on balanced per-class subsets, as in the report).

Both follow the contract of the scikit-learn developer guide: ``__init__`` only stores
hyperparameters (validated in ``fit``), ``fit`` returns ``self``, learned state ends in ``_``,
inputs are validated with :func:`sklearn.utils.validation.validate_data`, and no global
random state is used (a seed is drawn once per fit when ``random_state`` is ``None``).

Loss and weighting of :class:`MLPClassifier` (scikit-learn's own definitions)
-----------------------------------------------------------------------------
On a minibatch ``B`` with per-row weights ``w_i`` (``sample_weight * class_weight[y_i]``, 1
when neither is given) and ``S = sum_{i in B} w_i``::

    L_B = (1 / S) * sum_{i in B} w_i * loss_i  +  (alpha / (2 S)) * sum_layers ||W||^2

This is scikit-learn's ``MLPClassifier`` objective. In mlplab's terms (``MLP.l2`` adds
``0.5 * l2 * sum ||W||^2`` to the batch-mean loss) it is ``l2 = alpha / S``, set per batch, so
the last, partial minibatch of an epoch gets a slightly stronger penalty, exactly as in
scikit-learn. Without weights ``S`` is the number of rows in the batch. Because both the data
term and the penalty are normalised by ``S``, an integer weight ``w`` on a row is *exactly*
the same objective as repeating that row ``w`` times in full-batch training (tested), and a
zero weight is the same as removing the row: a minibatch whose weights are all zero makes no
step (with ``early_stopping``, a training or validation set of zero total weight is refused
with a ValueError). ``loss_i`` is the cross-entropy of the softmax output
(``output='softmax'``; binary problems use one sigmoid unit with binary cross-entropy, as
scikit-learn does) or ``sum_k (a_ik - onehot_ik)^2`` for ``output='sigmoid-mse'`` (mlplab's
MSE reduction, the textbook's network; binary problems use one sigmoid unit and a 0/1 target).
"""

from __future__ import annotations

import math
import numbers
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from mlplab.blas import dot
from mlplab.errors import ConfigError, DivergenceError, ModelFileError
from mlplab.network import MLP, STREAM_SHUFFLE, STREAM_SPLIT, rng_for
from mlplab.optimizers import get_optimizer
from mlplab.schedules import get_schedule
from mlplab.training import FLUSH_EVERY, bind_training_step, flush_subnormal_state, roll_back, rollback_point

__all__ = ["MLPClassifier", "OneVsRestLogisticRegression"]

_OUTPUTS = ("softmax", "sigmoid-mse")
_OPTIMIZERS = ("adam", "sgd", "rmsprop")
_INITS = {  # estimator name -> (mlplab initializer, params)
    "glorot": ("glorot", {}),
    "xavier": ("glorot", {}),
    "he": ("he", {}),
    "normal": ("normal", {"std": 0.1}),
    "zeros": ("zeros", {}),
    "uniform": ("uniform", {"low": 0.0, "high": 1.0}),  # report 2's U(0, 1)
}
_ESTIMATOR_FORMAT = "mlplab-estimator"


# -- helpers shared by both estimators ----------------------------------------------------
def _check_random_state(random_state: Any) -> None:
    """``random_state`` is None, an int >= 0 or a NumPy RandomState/Generator (nothing is drawn)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, (bool, np.bool_)):
        if int(random_state) < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
    elif not (random_state is None or isinstance(random_state, (np.random.RandomState, np.random.Generator))):
        raise ValueError(f"random_state must be None, an int or a numpy random generator, got {random_state!r}")


def _resolve_seed(random_state: Any) -> int:
    """An int seed from ``random_state``: an int is used as is, ``None`` draws fresh OS entropy
    (once per fit; the result is stored in ``seed_``), a RandomState/Generator is drawn from."""
    _check_random_state(random_state)
    if random_state is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    return int(random_state)


def _is_number(v: Any) -> bool:
    """A real number that is not a bool: scikit-learn refuses ``True`` for numeric parameters."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond float range
        return False


def _check_bools(est, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(est, name)
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {v!r}")


def _dtype_of(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _as_dense(X: Any, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous dense array of ``dtype`` (sparse input is densified)."""
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.ascontiguousarray(X, dtype=dtype)


def _init_spec(init: Any, init_params: dict | None) -> tuple[str, dict]:
    """The mlplab initializer and its parameters for ``init``/``init_params``, checked (a
    ValueError naming the parameter) by building the initializer, which draws nothing."""
    from mlplab.initializers import INITIALIZERS, get_initializer

    if not isinstance(init, str) or not (init in _INITS or init in INITIALIZERS):
        raise ValueError(f"init must be one of {sorted(_INITS)}, got {init!r}")
    if not (init_params is None or isinstance(init_params, dict)):
        raise ValueError(f"init_params must be None or a dict, got {init_params!r}")
    name, params = _INITS.get(init, (init, {}))
    params = {**params, **dict(init_params or {})}
    try:
        get_initializer(name, **params)
    except (ConfigError, TypeError) as exc:
        raise ValueError(f"init_params {init_params!r} for init={init!r}: {exc}") from None
    return name, params


def _encode(classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of ``y`` in the sorted ``classes``; unseen labels raise ValueError."""
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, len(classes) - 1)
    bad = classes[idx] != y
    if np.any(bad):
        raise ValueError(f"y contains labels not seen in classes_ {classes.tolist()}: "
                         f"{np.unique(np.asarray(y)[bad]).tolist()[:10]}")
    return idx.astype(np.int64)


def _jsonable_params(params: dict) -> dict:
    """``get_params()`` as JSON. A tuple is a JSON list and a list is tagged (``{"__list__":
    [...]}``), so each comes back as it was set; NumPy scalars and arrays become Python numbers
    and lists, a dtype its name, a RandomState/Generator None."""
    out = {}
    for k, v in params.items():
        if isinstance(v, tuple):
            v = [_py(a) for a in v]
        elif isinstance(v, list):
            v = {"__list__": [_py(a) for a in v]}
        elif isinstance(v, dict) and k == "class_weight":
            v = {"__pairs__": [[_py(a), _py(b)] for a, b in v.items()]}
        elif isinstance(v, (np.random.RandomState, np.random.Generator)):
            v = None  # not storable; seed_ records the seed actually used
        elif isinstance(v, np.dtype) or isinstance(v, type):
            v = np.dtype(v).name
        out[k] = _py(v)
    return out


def _params_from_json(params: dict) -> dict:
    """The inverse of :func:`_jsonable_params` (files from before lists were tagged hold their
    tuples and lists alike as JSON lists: both come back as tuples)."""
    out = dict(params)
    for k, v in out.items():
        if isinstance(v, list):
            out[k] = tuple(v)
        elif isinstance(v, dict) and set(v) == {"__list__"}:
            out[k] = list(v["__list__"])
    cw = out.get("class_weight")
    if isinstance(cw, dict) and "__pairs__" in cw:
        out["class_weight"] = {a: b for a, b in cw["__pairs__"]}
    return out


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _saved_state(est) -> dict:
    """What both estimators' model files record besides the network: which estimator, its
    hyperparameters, classes, input features, seed and training curve."""
    return {
        "estimator": type(est).__name__,
        "format": _ESTIMATOR_FORMAT,
        "params": _jsonable_params(est.get_params()),
        "classes": _classes_meta(est.classes_),
        "n_features_in": int(est.n_features_in_),
        "feature_names_in": (est.feature_names_in_.tolist() if hasattr(est, "feature_names_in_") else None),
        "seed": int(est.seed_),
        "n_iter": int(est.n_iter_),
        "loss_curve": [float(v) for v in est.loss_curve_],
    }


# what converting a hand-edited estimator field can raise in load() (ConfigError from the
# optimizer/schedule loaders; OverflowError from a NumPy RNG state out of range; ...)
_LOAD_FIELD_ERRORS = (KeyError, TypeError, ValueError, ConfigError, OverflowError, AttributeError, IndexError,
                      RecursionError)


def _read_saved(cls, path):
    """``(model file, its estimator state)`` of a file :func:`_saved_state` wrote for ``cls``."""
    from mlplab.serialization import load_model

    model = load_model(path)
    st = model.training
    if not isinstance(st, dict):
        raise ModelFileError(f"{path}: not a saved {cls.__name__} (training metadata is not a table)")
    if st.get("format") != _ESTIMATOR_FORMAT or st.get("estimator") != cls.__name__:
        raise ModelFileError(f"{path}: not a saved {cls.__name__} (use mlplab.serialization.load_model)")
    return model, st


def _restore_saved(est, st: dict) -> None:
    """The attributes :func:`_saved_state` recorded (but ``classes_``), set on ``est``."""
    if st.get("feature_names_in") is not None:
        names = np.asarray(st["feature_names_in"], dtype=object)
        if names.shape != (est.n_features_in_,):
            raise ValueError(f"{names.size} feature names for {est.n_features_in_} features")
        est.feature_names_in_ = names
    est.seed_ = int(st["seed"])
    est.n_iter_ = int(st["n_iter"])
    est.loss_curve_ = [float(v) for v in st["loss_curve"]]


def _classes_meta(classes: np.ndarray) -> dict:
    return {"values": classes.tolist(), "dtype": classes.dtype.str}


def _classes_from_meta(meta: dict) -> np.ndarray:
    dt = np.dtype(meta["dtype"])
    return np.asarray(meta["values"], dtype=dt)


# -- the MLP estimator ----------------------------------------------------------------------
class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier (mlplab's NumPy MLP behind scikit-learn's API).

    (Mixins come before ``BaseEstimator`` in the bases, as scikit-learn requires.)

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
        Widths of the hidden layers (``()`` gives a linear/logistic model).
    activation : {'relu', 'tanh', 'logistic' / 'sigmoid', 'identity', 'leaky_relu'}, default='relu'
    output : {'softmax', 'sigmoid-mse'}, default='softmax'
        ``softmax``: softmax output with cross-entropy (one sigmoid unit with binary
        cross-entropy for two classes, as scikit-learn). ``sigmoid-mse``: the textbook's
        sigmoid outputs with the MSE loss on one-hot targets (one unit for two classes).
    optimizer : {'adam', 'sgd', 'rmsprop'}, default='adam'
    learning_rate_init : float, default=0.001
    momentum : float, default=0.9 (sgd only; 0 gives plain SGD, whose step is fused into backprop)
    nesterov : bool, default=False (sgd with momentum only)
    beta_1, beta_2 : float, default=0.9, 0.999 — Adam's decay rates, as in scikit-learn.
    epsilon : float, default=1e-8
        Adam's (and RMSprop's) eps. Adam adds it as scikit-learn does, to the uncorrected
        ``sqrt(v)``: the step is ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) +
        epsilon)`` (``t`` the optimizer step; :class:`mlplab.optimizers.Adam` with
        ``eps_on="v"``), so the same hyperparameters give scikit-learn's Adam trajectory, step for
        step from the same weights. PyTorch (and mlplab's :class:`~mlplab.training.Trainer` by
        default) adds eps to the bias-corrected ``sqrt(v_hat)`` instead, which is this rule with
        an epsilon ``sqrt(1 - beta_2**t)`` times smaller; it differs visibly where ``sqrt(v)``
        is small, such as the weights of MNIST's border pixels.
        :func:`mlplab.interchange.to_torch` carries weights only. RMSprop adds ``epsilon`` to
        ``sqrt(s)``, as PyTorch does (scikit-learn has no RMSprop).
    schedule : str, default='constant'
        Per-epoch learning-rate schedule from :mod:`mlplab.schedules` ('constant', 'step',
        'inverse_scaling', 'cosine', 'reduce_on_plateau'); ``schedule_params`` (dict) holds its
        parameters. ``reduce_on_plateau`` watches the validation loss with ``early_stopping``,
        the training loss otherwise. ``'inverse_scaling'`` is ``lr / (epoch + 1) ** power``, per
        epoch: scikit-learn's ``learning_rate='invscaling'`` counts samples seen instead (see
        :class:`mlplab.schedules.InverseScaling`).
    batch_size : int, 'auto', 'full' or None, default=200
        Minibatch size, clipped to the number of samples. 'auto' is ``min(200, n_samples)``
        (scikit-learn's default); None or 'full' is full-batch gradient descent.
    max_iter : int, default=200
        Epochs per ``fit`` (with ``warm_start``, epochs *more*).
    alpha : float, default=1e-4
        L2 penalty with scikit-learn's meaning: ``alpha / (2 S) * sum ||W||^2`` is added to the
        weighted batch-mean loss, ``S`` the batch's total sample weight (its size without
        weights). That is mlplab's ``l2 = alpha / S``, set per batch (see the module docstring).
    dropout : float, default=0.0
        Dropout rate after each hidden activation.
    early_stopping : bool, default=False
        Hold out a stratified ``validation_fraction`` of the training data and stop when the
        validation accuracy has not improved by ``tol`` for ``n_iter_no_change`` epochs; the
        best weights are restored. Without it, training stops when the training loss has not
        improved by ``tol`` for ``n_iter_no_change`` epochs (scikit-learn's rule).
    validation_fraction, n_iter_no_change, tol : see ``early_stopping``.
    init : {'glorot', 'he', 'normal', 'uniform', 'zeros'}, default='glorot'
        Weight initialiser (biases start at zero); ``init_params`` (dict) overrides its
        parameters (e.g. ``{'std': 0.01}`` for 'normal').
    dtype : {'float32', 'float64'}, default='float32'
    class_weight : dict, 'balanced' or None
        Multiplies the sample weights by the weight of each row's class.
    random_state : int, RandomState, Generator or None
        Seeds initialisation, dropout, shuffling and the validation split (independent
        streams). None draws a fresh seed from OS entropy once per fit (kept in ``seed_``).
    verbose : bool, default=False — print the loss per epoch.
    warm_start : bool, default=False
        Continue from the previous fit. Unlike scikit-learn, the optimizer state (Adam's
        moments, step count), the schedule position and the shuffling stream are kept, so
        without early stopping ``fit(max_iter=a)`` followed by a warm ``fit(max_iter=b)`` equals
        ``fit(max_iter=a+b)``. With ``early_stopping`` it does not: every fit ends by restoring
        its best weights, so the next one continues from those, not from the last epoch's.

        Between warm fits, the training settings may change and take effect: learning rate,
        ``alpha``, ``batch_size``, ``dropout``, the stopping rule, the schedule (a new one
        continues at epoch ``n_iter_`` with fresh state) and the optimizer's hyperparameters
        (momentum, betas, epsilon: the optimizer state is kept; Adam's moment estimates keep
        their values when a beta changes, as in PyTorch, see
        :meth:`mlplab.optimizers.Optimizer.set_hyperparameters`). Another ``optimizer`` (or SGD
        switching momentum on or off) starts that optimizer's state afresh (``t_`` restarts at 0).
        The network itself cannot change: another ``hidden_layer_sizes``, ``activation``,
        ``output`` or ``dtype`` raises ValueError (refit without ``warm_start``); ``init``,
        ``init_params`` and ``random_state`` only act when a network is built and are ignored.
    shuffle : bool, default=True — reshuffle the training set each epoch.

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, n_iter_, t_ (optimizer steps: it restarts with
    a new optimizer), n_samples_seen_ (training rows over all epochs since the network was
    built, after the early-stopping split: scikit-learn's ``t_``; 0 for models made by
    ``from_mlp`` and for files saved before it was recorded),
    loss_ (last epoch's training loss: the minibatch losses ``L_B`` averaged with weights
    ``S``, i.e. the epoch's weighted mean loss; with ``sample_weight``/``class_weight`` and
    minibatches scikit-learn averages them by row count instead, so its ``loss_``, and the
    ``tol`` stopping that reads it, can differ), loss_curve_, best_loss_ (None with early stopping),
    validation_scores_ / validation_loss_curve_ / best_validation_score_ (early stopping
    only, else None; NaN validation losses for epochs trained in scikit-learn, see
    :func:`mlplab.interchange.from_sklearn`), seed_, net_ (the :class:`mlplab.network.MLP`),
    n_layers_, n_outputs_, out_activation_ ('softmax', 'logistic' or 'logistic-mse').

    Every hyperparameter is checked (a one-line ValueError naming it) before ``fit`` or
    ``partial_fit`` changes anything, as are the inputs: a refused fit leaves a fitted model as
    it was (network, ``classes_``, optimizer state) and an unfitted one unfitted. Numeric
    parameters refuse bools, as scikit-learn's do.

    If the training loss or the weights become non-finite, ``fit``/``partial_fit`` undo the
    epoch whole: the weights of the last finite epoch (the initial ones if it was the first),
    the optimizer state (moments, step count) and the shuffling and dropout generators as they
    were then, and raise :class:`mlplab.errors.DivergenceError`: the model never holds NaN
    weights, and a warm refit with a smaller ``learning_rate_init`` continues from there as if
    the diverged epoch had not run.
    """

    #: run unweighted minibatches through steps bound per batch size (same bits, less Python per step)
    _bind_steps = True

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        output="softmax",
        optimizer="adam",
        learning_rate_init=0.001,
        momentum=0.9,
        nesterov=False,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        schedule="constant",
        schedule_params=None,
        batch_size=200,
        max_iter=200,
        alpha=0.0001,
        dropout=0.0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        init="glorot",
        init_params=None,
        dtype="float32",
        class_weight=None,
        random_state=None,
        verbose=False,
        warm_start=False,
        shuffle=True,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output = output
        self.optimizer = optimizer
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.nesterov = nesterov
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.schedule = schedule
        self.schedule_params = schedule_params
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.alpha = alpha
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.init = init
        self.init_params = init_params
        self.dtype = dtype
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.shuffle = shuffle

    # -- scikit-learn plumbing ----------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified
        tags.classifier_tags.multi_label = False
        return tags

    def _hidden_sizes(self) -> tuple[int, ...]:
        """``hidden_layer_sizes`` as a tuple of ints (an int is one layer), checked."""
        hl = self.hidden_layer_sizes
        if isinstance(hl, numbers.Integral):
            hl = (hl,)
        # strictly ints: int() would silently read "55" as (5, 5) and (5.7,) as (5,)
        hl = None if isinstance(hl, (str, bytes)) or not hasattr(hl, "__iter__") else tuple(hl)
        if hl is None or not all(_is_int(h) for h in hl):
            raise ValueError(f"hidden_layer_sizes must be a tuple of ints, got {self.hidden_layer_sizes!r}")
        hl = tuple(int(h) for h in hl)
        if any(h < 1 for h in hl):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}")
        return hl

    def _validate_hyperparameters(self):
        """Check every hyperparameter (a one-line ValueError naming it), changing nothing: ``fit``
        calls it first, so a refused fit leaves the estimator as it was. Returns the schedule it
        built to check ``schedule_params`` (a fit uses it rather than building another)."""
        from mlplab.activations import ACTIVATIONS
        from mlplab.schedules import SCHEDULES

        self._hidden_sizes()
        act = self.activation
        if not isinstance(act, str) or act not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS.names()}, got {act!r}")
        if not isinstance(self.output, str) or self.output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {self.output!r}")
        if not isinstance(self.optimizer, str) or self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("learning_rate_init", "epsilon"):
            v = getattr(self, name)
            if not _is_number(v) or not v > 0 or not _finite(v):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        for name in ("alpha", "tol"):
            v = getattr(self, name)
            if not _is_number(v) or not v >= 0 or not _finite(v):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        for name in ("momentum", "beta_1", "beta_2", "dropout"):
            v = getattr(self, name)
            if not _is_number(v) or not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        for name in ("max_iter", "n_iter_no_change"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not _is_number(self.validation_fraction) or not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        _check_bools(self, ("nesterov", "early_stopping", "warm_start", "shuffle"))
        if not (isinstance(self.verbose, (bool, np.bool_)) or _is_int(self.verbose)):
            raise ValueError(f"verbose must be True, False or an int, got {self.verbose!r}")
        bs = self.batch_size
        if not (bs is None or (isinstance(bs, str) and bs in ("auto", "full")) or (_is_int(bs) and bs >= 1)):
            raise ValueError(f"batch_size must be a positive int, 'auto', 'full' or None, got {bs!r}")
        cw = self.class_weight  # (no == on it: an array would compare elementwise)
        if not (cw is None or (isinstance(cw, str) and cw == "balanced") or isinstance(cw, dict)):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        for label, weight in (cw.items() if isinstance(cw, dict) else ()):
            if not _is_number(weight) or not (0 <= weight < math.inf):
                raise ValueError(f"class_weight of class {label!r} must be a finite number >= 0, got {weight!r}")
        _dtype_of(self.dtype)
        _init_spec(self.init, self.init_params)
        if not isinstance(self.schedule, str) or self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES.names()}, got {self.schedule!r}")
        sp = self.schedule_params
        if not (sp is None or (isinstance(sp, dict) and all(isinstance(k, str) and k != "name" for k in sp))):
            raise ValueError(f"schedule_params must be None or a dict of the schedule's settings, got {sp!r}")
        try:
            schedule = self._new_schedule()
        except ConfigError as exc:
            raise ValueError(f"schedule_params {sp!r} for schedule={self.schedule!r}: {exc}") from None
        _check_random_state(self.random_state)
        return schedule

    def _batch(self, n: int) -> int:
        bs = self.batch_size
        if bs is None or bs == "full":
            return n
        if bs == "auto":
            return min(200, n)
        return min(int(bs), n)

    # -- building the network and its optimizer ---------------------------------------------
    def _build(self, n_features: int, n_classes: int, schedule=None) -> None:
        n_out = 1 if n_classes == 2 else n_classes
        if self.output == "softmax":
            out_act, loss = ("sigmoid", "binary_cross_entropy") if n_out == 1 else ("softmax", "cross_entropy")
        else:
            out_act, loss = "sigmoid", "mse"
        init, init_params = _init_spec(self.init, self.init_params)
        self.net_ = MLP([n_features, *self._hidden_sizes(), n_out], hidden_activation=self.activation,
                        output_activation=out_act, loss=loss, init=init, init_params=init_params,
                        dropout=self.dropout, l2=0.0, dtype=self.dtype, seed=self.seed_)
        self._set_structure_attrs()
        self._new_training_state(schedule)

    def _set_structure_attrs(self) -> None:
        net = self.net_
        self.n_layers_ = len(net.sizes)
        self.n_outputs_ = net.sizes[-1]
        if net.loss.name == "cross_entropy":
            self.out_activation_ = "softmax"
        elif net.loss.name == "binary_cross_entropy":
            self.out_activation_ = "logistic"
        else:
            self.out_activation_ = "logistic-mse"

    def _optimizer_spec(self) -> dict:
        if self.optimizer == "adam":
            # epsilon as scikit-learn adds it: to the uncorrected sqrt(v) (see the class docstring)
            return {"name": "adam", "beta1": self.beta_1, "beta2": self.beta_2, "eps": self.epsilon, "eps_on": "v"}
        if self.optimizer == "rmsprop":
            return {"name": "rmsprop", "eps": self.epsilon}
        return {"name": "sgd", "momentum": self.momentum, "nesterov": bool(self.nesterov and self.momentum)}

    def _new_optimizer(self):
        return get_optimizer(self._optimizer_spec(), self.net_.parameters(), lr=self.learning_rate_init)

    def _new_schedule(self):
        return get_schedule({"name": self.schedule, **dict(self.schedule_params or {})})

    def _new_training_state(self, schedule=None) -> None:
        """Fresh optimizer, schedule (``schedule``, if given, is a new one from the params) and
        training record."""
        self._optimizer = self._new_optimizer()
        self._schedule = self._new_schedule() if schedule is None else schedule
        self._shuffle_rng = rng_for(self.seed_, STREAM_SHUFFLE)
        self.n_iter_ = 0
        self.t_ = 0
        self.n_samples_seen_ = 0
        self.loss_curve_ = []
        self.best_loss_ = np.inf
        self._no_improvement_count = 0
        self.validation_scores_ = None
        self.validation_loss_curve_ = None
        self.best_validation_score_ = None

    def _check_same_network(self) -> None:
        """A warm fit continues the existing network: the settings that define it must not have
        changed (checked before anything is modified)."""
        from mlplab.activations import get_activation

        net = self.net_
        before = {"hidden_layer_sizes": tuple(net.sizes[1:-1]),
                  "activation": get_activation(net.hidden_activation).name,
                  "output": "sigmoid-mse" if net.loss.name == "mse" else "softmax",
                  "dtype": net.dtype.name}
        now = {"hidden_layer_sizes": self._hidden_sizes(), "activation": get_activation(self.activation).name,
               "output": self.output, "dtype": _dtype_of(self.dtype).name}
        for name, old in before.items():
            if now[name] != old:
                raise ValueError(f"{name} changed from {old!r} to {now[name]!r} between fits; "
                                 "refit without warm_start")

    def _ensure_training_state(self, schedule=None) -> None:
        """Before a warm fit: a model made by :meth:`from_mlp`/:meth:`load` without optimizer
        state gets a fresh one, and the training settings changed since the last fit apply
        (``schedule``: a new one from the params, if the caller has built it)."""
        if getattr(self, "_optimizer", None) is None:
            n_iter, curve = getattr(self, "n_iter_", 0), list(getattr(self, "loss_curve_", []))
            seen = getattr(self, "n_samples_seen_", 0)
            self._new_training_state(schedule)
            self.n_iter_, self.loss_curve_, self.n_samples_seen_ = n_iter, curve, seen
        else:
            spec, opt = self._optimizer_spec(), self._optimizer
            if opt.name != spec["name"] or (opt.name == "sgd" and bool(opt.momentum) != bool(spec["momentum"])):
                # another optimizer, or SGD gaining/losing its velocity: no state carries over
                self._optimizer = self._new_optimizer()
                self.t_ = 0
            else:  # the same state, new hyperparameters: Adam's moments are kept (as PyTorch keeps them)
                new = {key: bool(value) if key == "nesterov" else value if isinstance(value, str) else float(value)
                       for key, value in spec.items() if key != "name"}
                changed = {key: value for key, value in new.items() if getattr(opt, key) != value}
                if changed:
                    opt.set_hyperparameters(**changed)
            schedule = self._new_schedule() if schedule is None else schedule
            if schedule.config() != self._schedule.config():
                self._schedule = schedule  # continues at epoch n_iter_, its own state fresh
        if self.net_.dropout != float(self.dropout):
            _set_dropout(self.net_, float(self.dropout))
        self._optimizer.lr = float(self.learning_rate_init)

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and labels ``y``; returns ``self``."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``; ``classes`` (all labels) is required on the first call."""
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _fit(self, X, y, sample_weight, incremental: bool, classes=None):
        # Every check comes before the first change: a refused fit (bad hyperparameter, input,
        # weights, split) leaves a fitted model as it was and an unfitted one unfitted.
        schedule = self._validate_hyperparameters()
        if incremental and self.early_stopping:  # (scikit-learn's rule and message)
            raise ValueError("partial_fit does not support early_stopping=True")
        fitted = hasattr(self, "net_")
        first = not fitted or not (incremental or self.warm_start)
        if incremental and not fitted and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        # (n_features_in_ is set with classes_ below: a refit refused before then keeps the old model)
        X, y, features = _validate_keeping_features(self, X, y, reset=first, accept_sparse=("csr", "csc"),
                                                    dtype=(np.float64, np.float32))
        check_classification_targets(y)
        if first:
            cls = unique_labels(y) if classes is None else unique_labels(np.asarray(classes))
            if len(cls) < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; "
                                 f"got 1 class ({cls.tolist()})")
        else:
            cls = self.classes_
            if classes is not None and not np.array_equal(unique_labels(np.asarray(classes)), cls):
                raise ValueError(f"classes={list(classes)} differs from the classes of the first "
                                 f"partial_fit call {cls.tolist()}")
            if not incremental and not np.array_equal(unique_labels(y), cls):
                raise ValueError("warm_start can only be used where y has the same classes as in "
                                 f"the previous call to fit: {cls.tolist()}, got {unique_labels(y).tolist()}")
            self._check_same_network()
        y_enc = _encode(cls, y)
        w = self._weights(X, y_enc, cls, sample_weight, incremental)
        if w is not None:
            present = np.unique(y_enc[w > 0])
            if len(present) < 2 and (first or not incremental):
                raise ValueError("at least 2 classes need a positive total sample weight; "
                                 f"only 1 class has one ({cls[present].tolist()})")
        early = self.early_stopping and not incremental
        seed = _resolve_seed(self.random_state) if first else self.seed_
        split = None
        if early:
            from mlplab.data.splits import stratified_split

            # (checked here: the split itself would name its own parameter, test_fraction)
            n_val = round(float(self.validation_fraction) * len(y_enc))
            if n_val == 0 or n_val == len(y_enc):
                raise ValueError(f"validation_fraction={self.validation_fraction} leaves an empty training or "
                                 f"validation set for {len(y_enc)} samples")
            split = stratified_split(y_enc, self.validation_fraction, rng_for(seed, STREAM_SPLIT))
            for part, idx in zip(("training", "validation"), split):
                if w is not None and not w[idx].sum() > 0:
                    raise ValueError(f"early_stopping: the sample weights of the {part} set (validation_fraction="
                                     f"{self.validation_fraction}) sum to zero")
        # -- every check passed: from here on the estimator changes
        dt = _dtype_of(self.dtype)
        if first:
            _commit_features(self, features)
            self.classes_ = cls
            self.seed_ = seed
            self._build(X.shape[1], len(cls), schedule)
        else:
            self._ensure_training_state(schedule)
        # best_loss_ is None exactly while early stopping runs: a warm fit that switches it on or
        # off starts the new rule's count afresh (the old rule's best is not comparable)
        if (self.best_loss_ is None) != early:
            self._no_improvement_count = 0
            self.best_loss_ = None if early else np.inf
            if early:
                self.best_validation_score_, self._best_weights = -np.inf, None
        if early and self.validation_scores_ is None:
            self.validation_scores_, self.validation_loss_curve_ = [], []
        # Minibatches are gathered (and cast) from the caller's float64 array itself: no
        # float32 copy of the whole training set. Full batch needs the set in the network dtype.
        minibatch = self._batch(X.shape[0]) < X.shape[0]
        X = _as_dense(X, X.dtype if minibatch and X.dtype in (np.float32, np.float64) else dt)

        X_val = y_val = w_val = None
        if early:
            tr, va = split
            X, X_val = X[tr], X[va]
            y_enc, y_val = y_enc[tr], y_enc[va]
            if w is not None:
                w, w_val = w[tr], w[va]
        epochs = 1 if incremental else int(self.max_iter)
        try:
            self._train(X, y_enc, w, epochs, X_val, y_val, w_val, incremental)
        finally:
            _drop_caches(self.net_)
        return self

    def _weights(self, X, y_enc, cls, sample_weight, incremental) -> np.ndarray | None:
        """Per-row weights (sample_weight times class_weight), or None when all are 1."""
        w = None
        if sample_weight is not None:
            w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            w = np.array(w, dtype=np.float64, copy=True)
        cw = self.class_weight
        if cw is not None:
            if isinstance(cw, str):  # 'balanced' (validated)
                if incremental:
                    raise ValueError("class_weight='balanced' is not supported by partial_fit (the "
                                     "class frequencies of one batch are not those of the data): use "
                                     "compute_class_weight() on all labels and pass a dict")
                present = np.unique(y_enc)
                per_class = np.ones(len(cls))
                per_class[present] = compute_class_weight("balanced", classes=present, y=y_enc)
            else:
                per_class = np.ones(len(cls))
                for label, weight in cw.items():
                    hit = np.flatnonzero(cls == label)
                    if hit.size == 0:
                        raise ValueError(f"class_weight has label {label!r}, not among the classes {cls.tolist()}")
                    per_class[hit[0]] = float(weight)
            row = per_class[y_enc]
            w = row if w is None else w * row
        if w is not None and np.all(w == 1.0):
            return None
        if w is not None and not np.sum(w) > 0:
            raise ValueError("the sample weights sum to zero")
        return w

    def _train(self, X, y, w, epochs, X_val, y_val, w_val, incremental) -> None:
        net, opt = self.net_, self._optimizer
        n, d = X.shape
        bs = self._batch(n)
        alpha = float(self.alpha)
        total_w = float(n) if w is None else float(w.sum())
        wd = None if w is None else w.astype(net.dtype)
        early = X_val is not None
        base_lr = float(self.learning_rate_init)
        full = bs == n
        if full and X.dtype != net.dtype:  # (the early-stopping split can leave one batch)
            X = np.ascontiguousarray(X, dtype=net.dtype)
        if X_val is not None:
            X_val = np.ascontiguousarray(X_val, dtype=net.dtype)
        converged = False
        # steps bound to the minibatch buffers (unweighted fits), per (batch size, prescale): kept
        # across epochs, rebound only when the buffers changed (their cache was cleared)
        steps: dict[tuple[int, float | None], Any] = {}
        # the weights after the last finite epoch: a diverged epoch is undone (as Trainer does),
        # never leaving NaN weights in a model that counts as fitted
        good_weights = net.get_weights()
        good_state = self._rollback_point()  # and what else the epoch changes
        flush_in = FLUSH_EVERY
        for _ in range(epochs):
            opt.lr = self._schedule(self.n_iter_, base_lr)
            order = None
            if not full:
                order = self._shuffle_rng.permutation(n) if self.shuffle else np.arange(n)
            loss_sum = 0.0
            prescale = opt.prescale()
            for start in range(0, n, bs):
                bound = None
                if order is None:
                    Xb, yb, wb = X, y, wd
                else:
                    idx = order[start:start + bs]
                    k = len(idx)
                    if wd is None:
                        wb = None
                    else:
                        wb = wd[idx]
                        if not wb.any():  # zero total weight: no step, as if these rows were not there
                            continue
                    Xb = net.layers[0]._buffer("est_xb", (k, d), net.dtype)
                    yb = net.layers[0]._buffer("est_yb", (k,), np.int64)
                    if X.dtype == net.dtype:
                        np.take(X, idx, axis=0, out=Xb, mode="clip")  # "raise" would buffer the copy
                    else:  # gather in the input's dtype, then cast (faster than a casting take)
                        raw = net.layers[0]._buffer("est_xraw", (k, d), X.dtype)
                        np.take(X, idx, axis=0, out=raw, mode="clip")
                        np.copyto(Xb, raw, casting="same_kind")
                    np.take(y, idx, out=yb, mode="clip")
                    if wb is None and self._bind_steps:
                        key = (k, prescale)
                        bound = steps.get(key)
                        if bound is None or (bound and (Xb is not bound.xb or yb is not bound.yb)):
                            net.l2 = alpha / k  # what _step sets: the bound backward holds it
                            bound = steps[key] = bind_training_step(net, Xb, yb, prescale) or False
                loss_sum += self._step(Xb, yb, wb, alpha, bound or None)
                flush_in -= 1
                if not flush_in:
                    flush_subnormal_state(net, opt)  # (see mlplab.training.FLUSH_EVERY)
                    flush_in = FLUSH_EVERY
            loss = loss_sum / total_w
            if not math.isfinite(loss) or not net.finite_weights():  # (the last step's weights too)
                net.set_weights(good_weights)
                self._roll_back(good_state)
                what = "training loss became non-finite" if not math.isfinite(loss) else \
                    "weights became non-finite or too large"
                raise DivergenceError(f"{what} at epoch {self.n_iter_ + 1} (learning rate {opt.lr:g}); the last "
                                      f"finite weights (after epoch {self.n_iter_}) and their optimizer state were "
                                      "restored; try a smaller learning_rate_init", self.n_iter_ + 1)
            for good, p in zip(good_weights, net.parameters()):
                np.copyto(good, p)
            good_state = self._rollback_point()
            self.n_iter_ += 1
            self.n_samples_seen_ += n  # (scikit-learn's t_)
            self.t_ = opt.t
            self.loss_ = loss
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            monitored = loss
            if early:
                out = net.decision_function(X_val)
                val_loss = _weighted_loss(net, out, y_val, w_val)
                score = float(np.average(net.labels_from_output(out) == y_val, weights=w_val))
                self.validation_loss_curve_.append(val_loss)
                self.validation_scores_.append(score)
                monitored = val_loss
                if self.verbose:
                    print(f"Validation score: {score:f}")
                if score < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    self._best_weights = net.get_weights()
                self.best_loss_ = None
            else:
                if loss > self.best_loss_ - self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if loss < self.best_loss_:
                    self.best_loss_ = loss
            self._schedule.observe(monitored)
            if not incremental and self._no_improvement_count > self.n_iter_no_change:
                converged = True
                break
        if early and self._best_weights is not None:
            net.set_weights(self._best_weights)
        if not incremental and not converged:
            warnings.warn(f"{type(self).__name__}: the maximum of {epochs} epochs (max_iter) was reached "
                          "and the optimization has not converged yet", ConvergenceWarning,
                          stacklevel=4)  # the caller of fit (fit -> _fit -> _train)

    def _rollback_point(self) -> tuple:
        return rollback_point(self._optimizer, self._shuffle_rng, self.net_.dropout_rng)

    def _roll_back(self, point: tuple) -> None:
        roll_back(point, self._optimizer, self._shuffle_rng, self.net_.dropout_rng)
        self.t_ = self._optimizer.t

    def _step(self, Xb, yb, wb, alpha, bound=None) -> float:
        """One minibatch update; returns the batch's weighted loss sum ``S * L_B``. ``bound``:
        the same step bound to these buffers (:func:`mlplab.training.bind_training_step`, for
        unweighted minibatches), which computes the same bits with less Python."""
        net, opt = self.net_, self._optimizer
        k = Xb.shape[0]
        if bound is not None:
            value = bound.forward_loss()
            out, grad = bound.out, bound.grad
        else:
            out = net.forward(Xb, training=True)
            grad = net.layers[-1]._buffer("est_dout", out.shape, net.dtype)
            tbuf = net.layers[-1]._buffer("est_target", out.shape, net.dtype)
            value = net.loss.value_and_grad(out, yb, grad, target_buf=tbuf)  # grad = dl/dout / k
        if wb is None:
            s = float(k)
        else:
            s = float(wb.sum(dtype=np.float64))
            value = float(np.dot(_per_sample_loss(net.loss, out, yb), wb)) / s
            grad *= (wb * np.asarray(k / s, dtype=wb.dtype))[:, None]  # rows: w_i / S
        net.l2 = alpha / s
        sq = 0.0
        if alpha:
            sq = float(sum(dot(layer.W, layer.W) for layer in net.dense_layers))
        value += 0.5 * net.l2 * sq
        lr = opt.prescale()
        if lr is not None:  # plain SGD: the step fused into backpropagation
            grad *= lr
            if bound is not None:
                bound.run_backward()
            else:
                net.backward_step(grad, lr, overwrite_grad=True)  # grad is this loop's own buffer
            opt.count_step()
        else:
            if bound is not None:
                bound.run_backward()
            else:
                net.backward(grad, overwrite_grad=True)  # adds l2 * W to every dW; grad is ours
            opt.step(net.gradients())
        return value * s

    # -- prediction -------------------------------------------------------------------------
    def _raw(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=("csr", "csc"), dtype=(np.float64, np.float32))
        return _forward64(self.net_, _as_dense(X, np.float64))

    def _decision_from_raw(self, out: np.ndarray) -> np.ndarray:
        if out.shape[1] == 1:
            return out[:, 0] - 0.5 if self.net_.loss.name == "mse" else out[:, 0]
        return out

    def _proba_from_raw(self, out: np.ndarray) -> np.ndarray:
        name = self.net_.loss.name
        if out.shape[1] == 1:
            p = expit(out[:, 0]) if name == "binary_cross_entropy" else np.clip(out[:, 0], 0.0, 1.0)
            return np.stack([1.0 - p, p], axis=1)
        if name == "cross_entropy":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        # sigmoid-mse: the outputs normalised per row (uniform where all underflowed to 0), ranked
        # as the outputs are, so that argmax is predict's even for outputs far below 1e-300
        s = np.clip(out, 0.0, None)
        total = s.sum(axis=1, keepdims=True)
        p = np.divide(s, total, out=np.full_like(s, 1.0 / s.shape[1]), where=total > 0)
        return _rank_like(p, out)

    def decision_function(self, X):
        """Graph outputs: logits (softmax/BCE) or sigmoid outputs (MSE), shape (n, n_classes);
        for two classes a 1-D score that is positive for ``classes_[1]`` (logit, or output - 0.5)."""
        return self._decision_from_raw(self._raw(X))

    def predict_proba(self, X):
        """Class probabilities (n, n_classes), rows summing to 1, columns ordered as ``classes_``.
        With ``output='sigmoid-mse'`` these are the sigmoid outputs normalised per row, each row
        ranking the classes as the outputs do (see :func:`_rank_like`): its argmax is :meth:`predict`."""
        return self._proba_from_raw(self._raw(X))

    def predict_log_proba(self, X):
        out = self._raw(X)
        if out.shape[1] > 1 and self.net_.loss.name == "cross_entropy":
            return out - logsumexp(out, axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            return np.log(self._proba_from_raw(out))

    def predict(self, X):
        """Predicted labels (values of ``classes_``)."""
        dec = self.decision_function(X)
        idx = (dec > 0).astype(np.int64) if dec.ndim == 1 else dec.argmax(axis=1)
        return self.classes_[idx]

    # -- construction from a network, persistence ---------------------------------------------
    @classmethod
    def from_mlp(cls, net: MLP, classes, n_features_in: int | None = None, **params) -> "MLPClassifier":
        """A fitted estimator around an existing :class:`~mlplab.network.MLP` (not copied).

        The network must end in softmax/cross-entropy (k >= 3 classes), one sigmoid unit with
        binary cross-entropy (2 classes), or sigmoid units with MSE (``output='sigmoid-mse'``).
        ``classes`` is copied into ``classes_`` (a caller reusing its array does not relabel
        the model). ``params`` are hyperparameters for later (warm-started) fits; hidden sizes,
        activation, output and dtype are taken from the network.
        """
        classes = np.array(classes)  # (a copy)
        if classes.ndim != 1 or len(np.unique(classes)) != len(classes):
            raise ValueError("classes must be a 1-D array of distinct labels")
        order = np.argsort(classes, kind="stable")
        if not np.array_equal(order, np.arange(len(classes))):
            raise ValueError(f"classes must be sorted (scikit-learn's classes_ order), got {classes.tolist()}")
        k, n_out, loss = len(classes), net.sizes[-1], net.loss.name
        if k < 2:
            raise ValueError("a classifier needs at least 2 classes")
        want_out = 1 if k == 2 else k
        if n_out != want_out:
            raise ValueError(f"{k} classes need {want_out} output unit(s), the network has {n_out}")
        output = "sigmoid-mse" if loss == "mse" else "softmax"
        if loss not in ("mse", "cross_entropy", "binary_cross_entropy"):
            raise ValueError(f"unsupported loss {loss!r}")
        if net.shared_bias:
            raise ValueError("networks with a shared scalar bias are not supported")
        from mlplab.activations import get_activation

        params = dict(params)
        params.update(hidden_layer_sizes=tuple(net.sizes[1:-1]), activation=get_activation(net.hidden_activation).name,
                      output=output, dtype=net.dtype.name, dropout=net.dropout)
        est = cls(**params)
        est._validate_hyperparameters()
        est.classes_ = classes
        est.n_features_in_ = int(net.sizes[0] if n_features_in is None else n_features_in)
        if est.n_features_in_ != net.sizes[0]:
            raise ValueError(f"n_features_in={n_features_in} but the network takes {net.sizes[0]} inputs")
        est.seed_ = int(net.seed)
        est.net_ = net
        est._set_structure_attrs()
        est._optimizer = None
        est.n_iter_, est.t_, est.n_samples_seen_, est.loss_curve_ = 0, 0, 0, []
        est.best_loss_ = np.inf
        est._no_improvement_count = 0
        est.validation_scores_ = est.validation_loss_curve_ = est.best_validation_score_ = None
        est._best_weights = None
        return est

    def save(self, path, *, scaler=None, dataset=None) -> Path:
        """Write the fitted model (weights, hyperparameters, classes_, training state) to an
        mlplab model file (``.npz`` + JSON metadata; never pickle).

        The estimator sees inputs already scaled, so it cannot know how: pass the ``scaler``
        (:class:`~mlplab.data.preprocessing.Scaler`) and ``dataset`` (the ``Dataset``, or its
        name) to record them, as :func:`~mlplab.serialization.save_model` does, for
        ``mlplab evaluate``/``predict`` to scale inputs the same way.

        The hyperparameters are saved as set, also where ``set_params`` changed the network's
        settings since the last fit: :meth:`load` then gives this same estimator, whose warm fit
        refuses the change as this one's would. Invalid hyperparameters raise the ValueError
        ``fit`` would raise (a file :meth:`load` cannot read is not written)."""
        from mlplab.serialization import save_model

        check_is_fitted(self)
        self._validate_hyperparameters()
        early = self.best_loss_ is None  # (the validation rule's state, whatever the params say now)
        best = getattr(self, "_best_weights", None) if early else None
        marker = None
        if best is not None:  # usually the weights themselves: an early-stopping fit ends on its best
            same = all(np.array_equal(a, b) for a, b in zip(best, self.net_.parameters()))
            marker = "current" if same else "saved"
        extra: dict[str, np.ndarray] = {}
        state: dict[str, Any] = {
            **_saved_state(self),
            "best_loss": _finite_or_none(self.best_loss_),
            "stopping_rule": "validation" if early else "loss",
            "no_improvement_count": int(self._no_improvement_count),
            "validation_scores": self.validation_scores_,
            # (None for an epoch without a validation loss: one trained in scikit-learn)
            "validation_loss_curve": None if self.validation_loss_curve_ is None else [
                v if math.isfinite(v) else None for v in self.validation_loss_curve_],
            "best_validation_score": _finite_or_none(self.best_validation_score_),
            "best_weights": marker,
            "n_samples_seen": int(self.n_samples_seen_),
            "optimizer": None,
        }
        if marker == "saved":  # (after a DivergenceError, say)
            extra.update({f"best_weights/{i}": a for i, a in enumerate(best)})
        if getattr(self, "_optimizer", None) is not None:
            opt_meta, opt_arrays = self._optimizer.state_dict()
            state["optimizer"] = opt_meta
            state["shuffle_rng"] = self._shuffle_rng.bit_generator.state
            state["dropout_rng"] = self.net_.dropout_rng.bit_generator.state
            state["schedule_state"] = self._schedule.state()
            state["schedule_config"] = self._schedule.config()
            extra.update({f"optimizer/{k}": v for k, v in opt_arrays.items()})
        return save_model(path, self.net_, classes=self.classes_.tolist(), training=state, extra_arrays=extra,
                          scaler=scaler, dataset=dataset)

    @classmethod
    def load(cls, path) -> "MLPClassifier":
        """Read a model written by :meth:`save`: the same estimator (weights, attributes,
        hyperparameters), whose warm-started fit continues exactly as the saved one's would
        (optimizer, schedule and shuffling state; the stopping rule's count, best score and best
        weights).

        ``get_params()`` gives the values that were set, except where JSON has no equivalent:
        NumPy scalars and arrays come back as Python numbers and tuples, a dtype given as a class
        or ``np.dtype`` as its name (``np.float64`` -> ``'float64'``), a RandomState/Generator
        ``random_state`` as None (``seed_`` holds the seed it gave)."""
        model, st = _read_saved(cls, path)
        try:
            saved = _params_from_json(st["params"])
            net = model.net
            est = cls.from_mlp(net, _classes_from_meta(st["classes"]), st["n_features_in"],
                               **{k: v for k, v in saved.items() if k != "random_state"})
            # the params as set: after a set_params() since the fit, the network's settings may
            # differ from them, and a warm fit then refuses the change (as it would have in memory)
            est.set_params(**saved)
            est._validate_hyperparameters()
            if st.get("optimizer") is not None:
                est._new_training_state()
                # the optimizer and schedule the state belongs to: after a set_params() that
                # changed them without a refit, they are not the params' (a warm fit switches)
                est._optimizer = get_optimizer(st["optimizer"]["config"], est.net_.parameters())
                if st.get("schedule_config") is not None:
                    est._schedule = get_schedule(st["schedule_config"])
                est._optimizer.load_state_dict(st["optimizer"], {
                    k[len("optimizer/"):]: v for k, v in model.extra_arrays.items() if k.startswith("optimizer/")})
                est._shuffle_rng.bit_generator.state = st["shuffle_rng"]
                est.net_.dropout_rng.bit_generator.state = st["dropout_rng"]
                est._schedule.load_state(st.get("schedule_state") or {})
                est.t_ = est._optimizer.t
            _restore_saved(est, st)  # after the training state above, which starts them afresh
            if est.loss_curve_:
                est.loss_ = est.loss_curve_[-1]
            est.n_samples_seen_ = int(st.get("n_samples_seen", 0))  # (not recorded by older files)
            _load_stopping_state(est, st, saved, model.extra_arrays)
        except _LOAD_FIELD_ERRORS as exc:
            raise ModelFileError(f"{path}: inconsistent estimator metadata ({exc})") from None
        return est


def _load_stopping_state(est: MLPClassifier, st: dict, params: dict, arrays: dict) -> None:
    """The stopping rule's state :meth:`MLPClassifier.save` wrote, checked, set on ``est``:
    which rule it belongs to (``best_loss_`` None for the validation rule), its count, best
    loss or validation score, the validation record, and the best weights to restore."""
    est._no_improvement_count = int(st.get("no_improvement_count", 0))
    if est._no_improvement_count < 0:
        raise ValueError(f"no_improvement_count is {est._no_improvement_count}")
    est.validation_scores_ = _float_list_or_none(st, "validation_scores")
    est.validation_loss_curve_ = _float_list_or_none(st, "validation_loss_curve", missing=math.nan)
    if (est.validation_scores_ is None) != (est.validation_loss_curve_ is None) or (
            est.validation_scores_ is not None and len(est.validation_scores_) != len(est.validation_loss_curve_)):
        raise ValueError("validation_scores and validation_loss_curve do not match")
    rule = st.get("stopping_rule")
    if rule is None:  # a file from before the rule was recorded: the params' rule, if it has run
        early = bool(params.get("early_stopping")) and est.validation_scores_ is not None
    elif rule in ("validation", "loss"):
        early = rule == "validation"
    else:
        raise ValueError(f"stopping_rule must be 'validation' or 'loss', got {rule!r}")
    if early and est.validation_scores_ is None:
        raise ValueError("the validation stopping rule without validation_scores")
    est.best_loss_ = None if early else np.inf if st.get("best_loss") is None else float(st["best_loss"])
    bvs = st.get("best_validation_score")
    est.best_validation_score_ = None if est.validation_scores_ is None else (
        -np.inf if bvs is None else float(bvs))
    marker = st.get("best_weights", "current" if rule is None else None)
    est._best_weights = None
    if early and marker == "current":  # an early-stopping fit ends on its best weights
        est._best_weights = est.net_.get_weights()
    elif early and marker == "saved":
        params_ = est.net_.parameters()
        best = [np.array(arrays[f"best_weights/{i}"]) for i in range(len(params_))]
        for i, (a, p) in enumerate(zip(best, params_)):
            if a.shape != p.shape or a.dtype.kind != "f" or not np.all(np.isfinite(a)):
                raise ValueError(f"best_weights/{i} is not a finite array of shape {p.shape}")
        est._best_weights = [a.astype(p.dtype) for a, p in zip(best, params_)]
    elif marker not in (None, "current", "saved"):
        raise ValueError(f"best_weights must be None, 'current' or 'saved', got {marker!r}")


def _float_list_or_none(st: dict, key: str, missing: float | None = None) -> list[float] | None:
    """``st[key]`` as a list of finite floats (``None`` if absent): a saved curve, checked.
    With ``missing``, a ``None`` entry (a value not recorded) becomes ``missing``."""
    v = st.get(key)
    if v is None:
        return None
    if not isinstance(v, list):
        raise ValueError(f"{key} is not a list")
    out = [missing if x is None and missing is not None else float(x) for x in v]
    if not all(math.isfinite(x) for x, raw in zip(out, v) if raw is not None or missing is None):
        raise ValueError(f"{key} holds a value that is not finite")
    return out


def _finite_or_none(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _fit_weighted_sgd(trainer, X: np.ndarray, y: np.ndarray, w: np.ndarray, epochs: int) -> list[float]:
    """Plain SGD on the row-weighted loss ``sum_B w_i loss_i / sum_B w_i`` per minibatch, in the
    minibatch order ``trainer`` would use (its seeded shuffling, its batch size, no step on a
    minibatch of zero total weight) and with its divergence guard. Returns the per-epoch loss
    ``sum w_i loss_i / sum w_i`` over the epoch's minibatches."""
    net, opt = trainer.net, trainer.optimizer
    X, y = trainer.validate(X, y, epochs)
    n = X.shape[0]
    bs = trainer.batch_size or n
    full = bs == n
    total = float(w.sum())
    wd = w.astype(net.dtype)
    lr = float(opt.lr)
    good = net.get_weights()
    curve = []
    for epoch in range(epochs):
        order = None if full else trainer._epoch_order(epoch, n)
        loss_sum = 0.0
        for start in range(0, n, bs):
            if order is None:
                Xb, yb, wb = X, y, wd
            else:  # gathered into buffers of the network's, reused at every minibatch of a size
                idx = order[start:start + bs]
                k = len(idx)
                Xb = np.take(X, idx, axis=0, out=net.layers[0]._buffer("ovr_xb", (k, X.shape[1]), net.dtype))
                yb = np.take(y, idx, out=net.layers[0]._buffer("ovr_yb", (k,), np.int64))
                wb = np.take(wd, idx, out=net.layers[0]._buffer("ovr_wb", (k,), net.dtype))
            s = float(wb.sum(dtype=np.float64))
            if s == 0.0:
                continue
            out = net.forward(Xb, training=True)
            grad = net.layers[-1]._buffer("ovr_dout", out.shape, net.dtype)
            tbuf = net.layers[-1]._buffer("ovr_target", out.shape, net.dtype)
            net.loss.value_and_grad(out, yb, grad, target_buf=tbuf)  # dl/dout / k
            loss_sum += float(np.dot(_per_sample_loss(net.loss, out, yb), wb))
            grad *= (wb * np.asarray(len(yb) * lr / s, dtype=wb.dtype))[:, None]  # rows: lr * w_i / S
            net.backward_step(grad, lr, overwrite_grad=True)
            opt.count_step()
        loss = loss_sum / total
        trainer.epochs_done = epoch + 1
        trainer._check_divergence(loss, good)  # restores the last finite weights and raises
        good = net.get_weights()
        curve.append(loss)
    return curve


def _per_sample_loss(loss, out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's loss (float64, shape (n,)), so that ``loss.value == mean`` of it."""
    z = out.astype(np.float64)
    if loss.name == "cross_entropy":
        return logsumexp(z, axis=1) - z[np.arange(len(y)), y]
    t = loss.targets(y).astype(np.float64)
    if loss.name == "binary_cross_entropy":
        return (np.logaddexp(0.0, z) - t * z).sum(axis=1)
    d = z - t
    return np.einsum("ij,ij->i", d, d)


def _weighted_loss(net: MLP, out: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> float:
    if w is None:
        return float(net.loss.value(out, y))
    return float(np.average(_per_sample_loss(net.loss, out, y), weights=w))


def _forward64(net: MLP, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """The network's inference output (logits for fused losses) computed in float64.

    Predictions are made in float64 whatever the training dtype: float32 matrix products
    can round a row differently depending on how many rows are multiplied together, and a
    prediction should not depend on the other rows of ``X``.
    """
    from mlplab.layers import ActivationLayer, Dense

    params = [(layer, layer.W.astype(np.float64), layer.b.astype(np.float64))
              for layer in net.layers if isinstance(layer, Dense)]
    weights = {id(layer): (W, b) for layer, W, b in params}
    out = np.empty((X.shape[0], net.sizes[-1]))
    for start in range(0, X.shape[0], batch_size):
        a = X[start:start + batch_size]
        for layer in net.layers:
            if isinstance(layer, Dense):
                W, b = weights[id(layer)]
                a = a @ W  # (n, fan_in) @ (fan_in, fan_out)
                a += b
            elif isinstance(layer, ActivationLayer):
                a = layer.activation.forward(a, out=a)
            # Dropout is the identity at inference
        out[start:start + batch_size] = a
    return out


def _set_dropout(net: MLP, rate: float) -> None:
    """Change a built network's dropout rate in place (weights kept), for a warm fit that
    changed ``dropout``: a Dropout layer follows every hidden activation (rate 0 drops them)."""
    from mlplab.layers import ActivationLayer, Dropout

    layers = [layer for layer in net.layers if not isinstance(layer, Dropout)]
    if rate > 0:
        hidden = [i for i, layer in enumerate(layers) if isinstance(layer, ActivationLayer) and i + 1 < len(layers)]
        for i in reversed(hidden):
            layers.insert(i + 1, Dropout(rate, net.dropout_rng, net.dtype))
    net.layers = layers
    net.dropout = rate


def _drop_caches(net: MLP) -> None:
    """Release training buffers and cached activations (keeps pickles and memory small)."""
    net.release()
    for layer in net.layers:
        for attr in ("_x", "_a", "_mask"):
            if hasattr(layer, attr):
                setattr(layer, attr, None)


_FEATURE_ATTRS = ("n_features_in_", "feature_names_in_")


def _validate_keeping_features(est, X, y, reset: bool, **kwargs):
    """``validate_data(est, X, y, reset=reset, **kwargs)`` that leaves ``est``'s
    ``n_features_in_`` / ``feature_names_in_`` as they were; returns ``(X, y, features)``,
    the attributes to set with :func:`_commit_features` once the fit has succeeded."""
    saved = {a: vars(est)[a] for a in _FEATURE_ATTRS if a in vars(est)}
    try:
        X, y = validate_data(est, X, y, reset=reset, **kwargs)
        features = {a: vars(est)[a] for a in _FEATURE_ATTRS if a in vars(est)}
    finally:
        _commit_features(est, saved)
    return X, y, features


def _commit_features(est, features: dict) -> None:
    for a in _FEATURE_ATTRS:
        vars(est).pop(a, None)
    vars(est).update(features)


# -- one-vs-rest logistic regression ---------------------------------------------------------
def _ovr_subset(y: np.ndarray, target: int, k: int, n_pos: int, n_neg: int,
                rng: np.random.Generator) -> np.ndarray:
    """Indices (shuffled) of ``min(n_pos, count)`` samples of class ``target`` and
    ``min(n_neg, count)`` of each other class, each class capped at its own count ``count``,
    drawn without replacement. Where no class is short this draws exactly what
    :func:`mlplab.data.splits.balanced_ovr_subset` draws from the same generator."""
    parts = []
    for c in range(k):
        members = np.flatnonzero(y == c)
        want = min(n_pos if c == target else n_neg, len(members))
        parts.append(rng.choice(members, size=want, replace=False))
    idx = np.concatenate(parts).astype(np.int64)
    return idx[rng.permutation(len(idx))]


def _rank_like(p: np.ndarray, key: np.ndarray) -> np.ndarray:
    """``p`` (n, k) adjusted in place so that each row orders its entries as ``key``'s row does:
    where rounding made two entries equal whose keys differ, the larger key's is set one ulp
    above (ascending through the row, so larger keys stay larger); equal keys get equal entries.
    A row's argmax is then ``key``'s, as :meth:`predict` takes it."""
    order = np.argsort(key, axis=1, kind="stable")
    ks, ps = np.take_along_axis(key, order, axis=1), np.take_along_axis(p, order, axis=1)
    for j in range(1, ps.shape[1]):  # ascending key: equal keys equal, larger keys larger
        prev = ps[:, j - 1]
        up = np.where(ps[:, j] > prev, ps[:, j], np.nextafter(prev, np.inf))
        ps[:, j] = np.where(ks[:, j] == ks[:, j - 1], prev, up)
    np.put_along_axis(p, order, ps, axis=1)
    return p


def _ovr_decision(z: np.ndarray) -> np.ndarray:
    """:meth:`OneVsRestLogisticRegression.decision_function` from the logits ``z``."""
    if z.shape[1] == 2:
        return np.logaddexp(0.0, -z[:, 0]) - np.logaddexp(0.0, -z[:, 1])  # log s1 - log s0
    return z


class OneVsRestLogisticRegression(ClassifierMixin, BaseEstimator):
    """One sigmoid neuron per class, each trained (binary cross-entropy, SGD) on its class
    against the rest: report 2's part 1, with its options.

    Parameters
    ----------
    learning_rate : float, default=0.01 (the report's)
    max_iter : int, default=1000 — epochs (the report's 1000 full-batch iterations)
    batch_size : int or None, default=None — None is full-batch gradient descent (the report's)
    init : {'zeros', 'uniform', 'glorot', 'normal'}, default='zeros'
        'uniform' is the report's U(0, 1) (its ``initialize_with_zeros``); biases start at 0.
    threshold : float, default=0.5
        Cut-off of :meth:`predict_binary` (``score >= threshold``); the report used 0.75.
    n_pos, n_neg_per_class : int or None
        Balanced subsets: neuron ``c`` trains on ``n_pos`` samples of class ``c`` plus
        ``n_neg_per_class`` (default ``n_pos // (k - 1)``) of each other class, drawn without
        replacement, each class capped at what it has (the report: 5000 + 555 of each other digit).
        None (default) trains every neuron on all the data.
    dtype : {'float32', 'float64'}
    random_state : int, RandomState, Generator or None (a seed drawn once per fit, in ``seed_``)

    Without subsets the k neurons are trained together as one ``d -> k`` layer with the
    summed binary cross-entropy: its gradient for each neuron is exactly that neuron's own,
    so this is the same as k separate trainings (one gemm instead of k).

    ``fit(X, y, sample_weight=...)`` weights rows as :class:`MLPClassifier` does (see
    :meth:`fit`). There is no ``class_weight``: the report balances its classes by
    subsampling (``n_pos``); pass per-row weights to balance them instead.

    Attributes
    ----------
    classes_, n_features_in_, coef_ (k, d), intercept_ (k,), n_iter_, loss_curve_ (summed
    over the neurons), seed_.

    :meth:`save` / :meth:`load` keep a fitted model in an mlplab model file (no pickle).
    """

    def __init__(self, learning_rate=0.01, max_iter=1000, batch_size=None, init="zeros", threshold=0.5,
                 n_pos=None, n_neg_per_class=None, dtype="float32", random_state=None):
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.init = init
        self.threshold = threshold
        self.n_pos = n_pos
        self.n_neg_per_class = n_neg_per_class
        self.dtype = dtype
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = False
        return tags

    def _validate_hyperparameters(self) -> None:
        lr = self.learning_rate
        if not _is_number(lr) or not lr > 0 or not _finite(lr):
            raise ValueError(f"learning_rate must be a positive finite number, got {lr!r}")
        if not _is_int(self.max_iter) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an int >= 1, got {self.max_iter!r}")
        bs = self.batch_size
        if not (bs is None or (_is_int(bs) and bs >= 1)):
            raise ValueError(f"batch_size must be None or a positive int, got {bs!r}")
        for name in ("n_pos", "n_neg_per_class"):
            v = getattr(self, name)
            if not (v is None or (_is_int(v) and v >= (1 if name == "n_pos" else 0))):
                raise ValueError(f"{name} must be None or a positive int, got {v!r}")
        if self.n_neg_per_class is not None and self.n_pos is None:
            raise ValueError("n_neg_per_class needs n_pos (balanced subsets)")
        self._check_threshold()
        _dtype_of(self.dtype)
        _init_spec(self.init, None)
        _check_random_state(self.random_state)

    def _check_threshold(self) -> float:
        t = self.threshold
        if not _is_number(t) or not 0 <= t <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {t!r}")
        return float(t)

    def _net(self, d: int, k: int, seed: int) -> MLP:
        init, params = _init_spec(self.init, None)
        return MLP([d, k], hidden_activation="sigmoid", output_activation="sigmoid", loss="binary_cross_entropy",
                   init=init, init_params=params, dtype=self.dtype, seed=seed)

    def fit(self, X, y, sample_weight=None):
        """Train one neuron per class; returns ``self``. A fit that fails (a bad input, a
        :class:`~mlplab.errors.DivergenceError`) leaves the estimator as it was.

        ``sample_weight`` (non-negative, one per row) weights each row's binary cross-entropy
        in every neuron's loss, normalised by the minibatch's total weight (the weighting of
        :class:`MLPClassifier`): in full-batch training an integer weight ``w`` is the same as
        repeating the row ``w`` times, and a zero weight the same as leaving it out. With
        balanced subsets (``n_pos``), a neuron's subset is drawn as without weights and its rows
        keep their weights; a minibatch whose weights are all zero makes no step."""
        from mlplab.training import Trainer

        self._validate_hyperparameters()
        X, y, features = _validate_keeping_features(self, X, y, reset=True, accept_sparse=("csr", "csc"),
                                                    dtype=(np.float64, np.float32))
        check_classification_targets(y)
        cls = unique_labels(y)
        if len(cls) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; got 1 class ({cls.tolist()})")
        w = None
        if sample_weight is not None:
            w = np.array(_check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True))
            if np.all(w == 1.0):
                w = None
            elif not np.sum(w) > 0:
                raise ValueError("the sample weights sum to zero")
        seed = _resolve_seed(self.random_state)
        y_enc = _encode(cls, y)
        X = _as_dense(X, _dtype_of(self.dtype))
        n, d = X.shape
        k = len(cls)
        epochs = int(self.max_iter)

        def train(net: MLP, Xs: np.ndarray, ys: np.ndarray, ws: np.ndarray | None, what: str) -> list[float]:
            bs = None if self.batch_size is None else min(int(self.batch_size), len(ys))
            trainer = Trainer(net, "sgd", lr=float(self.learning_rate), batch_size=bs, seed=net.seed)
            if ws is None:
                curve = list(trainer.fit(Xs, ys, epochs).loss)
            elif not np.sum(ws) > 0:
                raise ValueError(f"the sample weights of {what} sum to zero")
            else:
                curve = _fit_weighted_sgd(trainer, Xs, ys, ws, epochs)
            _drop_caches(net)
            return curve

        if self.n_pos is None:
            net = self._net(d, k, seed)  # one-hot targets: column c is neuron c vs the rest
            loss_curve = train(net, X, y_enc, w, "the training set")
            W, b = net.dense_layers[0].W, net.dense_layers[0].b
            coef, intercept = W.T.astype(np.float64), b.astype(np.float64)
        else:
            n_neg = int(self.n_pos) // (k - 1) if self.n_neg_per_class is None else int(self.n_neg_per_class)
            coef, intercept, curves = np.empty((k, d)), np.empty(k), []
            seeds = np.random.SeedSequence(seed, spawn_key=(STREAM_SPLIT,)).spawn(k)
            for c in range(k):
                idx = _ovr_subset(y_enc, c, k, int(self.n_pos), n_neg, np.random.default_rng(seeds[c]))
                net = self._net(d, 1, seed + c)
                curves.append(train(net, X[idx], (y_enc[idx] == c).astype(np.int64), None if w is None else w[idx],
                                    f"class {cls.tolist()[c]!r}'s balanced subset"))
                coef[c] = net.dense_layers[0].W[:, 0]
                intercept[c] = net.dense_layers[0].b[0]
            loss_curve = [float(v) for v in np.sum(curves, axis=0)]
        # learned state is committed only now: a fit that fails leaves the previous one intact
        _commit_features(self, features)
        self.classes_, self.seed_ = cls, seed
        self.coef_, self.intercept_, self.loss_curve_, self.n_iter_ = coef, intercept, loss_curve, epochs
        return self

    def _logits(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=("csr", "csc"), dtype=(np.float64, np.float32))
        X = _as_dense(X, np.float64)
        return X @ self.coef_.T + self.intercept_  # (n, d) @ (d, k)

    def binary_scores(self, X) -> np.ndarray:
        """Each neuron's sigmoid output, shape (n, n_classes)."""
        return expit(self._logits(X))

    def predict_binary(self, X) -> np.ndarray:
        """Each neuron's yes/no decision ``score >= threshold``, boolean (n, n_classes)."""
        t = self._check_threshold()
        return self.binary_scores(X) >= t

    def decision_function(self, X):
        """Logits (n, n_classes); for two classes the 1-D ``log s_1 - log s_0`` of the two neurons'
        scores ``s`` (positive for ``classes_[1]``, ranked like ``predict_proba[:, 1]``)."""
        return _ovr_decision(self._logits(X))

    def predict_proba(self, X):
        """The neurons' scores normalised per row, ``s / sum(s)`` (not calibrated probabilities).

        Computed in log space (``log s = -log(1 + exp(-z))``), so scores that round to 0 or 1
        keep their order. Where float64 cannot tell two of a row apart (two logits above ~37),
        they are set one ulp apart in the order of the logits: each row ranks the classes as
        :meth:`decision_function` does, and :meth:`predict` is ``classes_[argmax(predict_proba)]``.
        For two classes, column 1 is ``expit(decision_function)``.
        """
        z = self._logits(X)
        if z.shape[1] == 2:  # s1 / (s0 + s1) = expit(log s1 - log s0)
            d = _ovr_decision(z)
            key = np.column_stack([-d, d])
            p = expit(key)
        else:
            key = z
            log_s = -np.logaddexp(0.0, -z)
            p = np.exp(log_s - logsumexp(log_s, axis=1, keepdims=True))
        return _rank_like(p, key)

    def predict(self, X):
        """The class of the neuron with the highest score."""
        dec = self.decision_function(X)
        idx = (dec > 0).astype(np.int64) if dec.ndim == 1 else dec.argmax(axis=1)
        return self.classes_[idx]

    def save(self, path) -> Path:
        """Write the fitted neurons (one ``d -> k`` sigmoid layer, float64), hyperparameters
        (threshold included) and ``classes_`` to an mlplab model file (never pickle)."""
        from mlplab.serialization import save_model

        check_is_fitted(self)
        k, d = self.coef_.shape
        net = MLP([d, k], hidden_activation="sigmoid", output_activation="sigmoid", loss="binary_cross_entropy",
                  init="zeros", dtype="float64")
        net.dense_layers[0].W[...] = self.coef_.T
        net.dense_layers[0].b[...] = self.intercept_
        return save_model(path, net, classes=[str(c) for c in self.classes_], training=_saved_state(self))

    @classmethod
    def load(cls, path) -> "OneVsRestLogisticRegression":
        """Read a model written by :meth:`save`: the same predictions, scores and threshold."""
        model, st = _read_saved(cls, path)
        try:
            est = cls(**_params_from_json(st["params"]))
            classes = _classes_from_meta(st["classes"])
            W, b = model.net.dense_layers[0].W, model.net.dense_layers[0].b
            if len(model.net.sizes) != 2 or W.shape != (int(st["n_features_in"]), len(classes)):
                raise ValueError(f"weights {W.shape} for {st['n_features_in']} features and {len(classes)} classes")
            est.classes_ = classes
            est.coef_ = np.ascontiguousarray(W.T, dtype=np.float64)
            est.intercept_ = np.asarray(b, dtype=np.float64).copy()
            est.n_features_in_ = int(st["n_features_in"])
            _restore_saved(est, st)
        except _LOAD_FIELD_ERRORS as exc:
            raise ModelFileError(f"{path}: inconsistent estimator metadata ({exc})") from None
        return est
