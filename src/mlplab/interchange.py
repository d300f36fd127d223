"""Move trained networks between mlplab, scikit-learn and PyTorch.

* :func:`from_sklearn` / :func:`to_sklearn`: a fitted ``sklearn.neural_network.MLPClassifier``
  <-> :class:`mlplab.estimator.MLPClassifier`. scikit-learn's layout is mlplab's (``coefs_[i]``
  is ``(fan_in, fan_out)``), its binary output is one logistic unit (mlplab: one sigmoid unit
  with binary cross-entropy) and its multiclass output is softmax (mlplab: softmax fused with
  cross-entropy on the logits), so the arrays are copied unchanged.
* :func:`to_torch` / :func:`from_torch`: ``torch.nn.Sequential`` of ``Linear`` and activation
  modules; ``Linear.weight`` is ``(out, in)``, the transpose of mlplab's ``W``. PyTorch is an
  optional dependency, imported only by these two functions.

Round trips reproduce the weights exactly (dtype casts aside), hence the predictions. A
converted model shares no array or list with its source: training one (or editing its
``classes_``) leaves the other as it was. Training hyperparameters are carried under the other
library's names, but later fits need not agree: see :func:`to_sklearn` (with scikit-learn they
agree step for step where both libraries have the setting; PyTorch's Adam adds ``epsilon``
elsewhere, see :class:`mlplab.estimator.MLPClassifier`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mlplab.activations import get_activation
from mlplab.estimator import MLPClassifier
from mlplab.network import MLP

__all__ = ["from_sklearn", "to_sklearn", "to_torch", "from_torch"]

# scikit-learn hidden activation <-> mlplab activation
_SK_TO_MLPLAB = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_MLPLAB_TO_SK = {v: k for k, v in _SK_TO_MLPLAB.items()}


def _finite_weights(arrays: list[np.ndarray], what: str) -> list[np.ndarray]:
    """``arrays``, refused (ValueError naming the array) if one holds NaN or infinity: a model
    with them predicts nothing."""
    for i, a in enumerate(arrays):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{what} {i // 2} ({'weights' if i % 2 == 0 else 'biases'}) holds NaN or infinite values")
    return arrays


def _float_dtype(arr: np.ndarray) -> str:
    return "float32" if np.asarray(arr).dtype == np.float32 else "float64"


def _check_fitted_mlplab(est: MLPClassifier) -> None:
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(est, MLPClassifier):
        raise TypeError(f"expected a mlplab.estimator.MLPClassifier, got {type(est).__name__}")
    check_is_fitted(est)


def _weights(est: MLPClassifier) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(layer.W, layer.b) for layer in est.net_.dense_layers]


# -- scikit-learn ---------------------------------------------------------------------------
def from_sklearn(mlp: Any, dtype: str | None = None) -> MLPClassifier:
    """A fitted mlplab :class:`~mlplab.estimator.MLPClassifier` with the weights of a fitted
    ``sklearn.neural_network.MLPClassifier`` (identical predictions).

    ``dtype`` defaults to the dtype of ``mlp.coefs_`` (float64 unless fitted on float32 data).
    Multilabel models (logistic outputs over several units) have no mlplab counterpart.

    The hyperparameters are copied for later fits; those fits differ from scikit-learn's where
    the libraries do (see :func:`to_sklearn`). Adam's and SGD's hyperparameters map exactly
    (both add Adam's ``epsilon`` to the uncorrected ``sqrt(v)``); ``learning_rate`` ('invscaling', 'adaptive') is not carried (the
    estimator's ``schedule`` is 'constant'). scikit-learn's ``t_`` (samples seen) becomes
    ``n_samples_seen_``; the optimizer state is not carried, so ``t_`` (optimizer steps) is 0.

    The fitted record and stopping state are carried, as :func:`to_sklearn` carries them the
    other way: ``loss_``, ``loss_curve_``, ``best_loss_`` (None with early stopping), the count
    of epochs without improvement, and with early stopping ``validation_scores_``,
    ``best_validation_score_`` and the best weights, so a warm fit continues the stopping rule
    where scikit-learn left it. scikit-learn records no validation loss: those epochs'
    ``validation_loss_curve_`` entries are NaN.
    """
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(mlp, SkMLPClassifier):
        raise TypeError(f"expected sklearn.neural_network.MLPClassifier, got {type(mlp).__name__}")
    check_is_fitted(mlp)
    coefs, intercepts = list(mlp.coefs_), list(mlp.intercepts_)
    n_out = coefs[-1].shape[1]
    if mlp.out_activation_ == "softmax":
        out_act, loss = "softmax", "cross_entropy"
    elif mlp.out_activation_ == "logistic" and n_out == 1:
        out_act, loss = "sigmoid", "binary_cross_entropy"
    else:
        raise ValueError(f"cannot convert a model with output activation {mlp.out_activation_!r} and "
                         f"{n_out} output units (multilabel models are not supported)")
    if mlp.activation not in _SK_TO_MLPLAB:
        raise ValueError(f"unknown scikit-learn activation {mlp.activation!r}")
    dt = dtype or _float_dtype(coefs[0])
    sizes = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
    seed = mlp.random_state if isinstance(mlp.random_state, (int, np.integer)) and mlp.random_state >= 0 else 0
    net = MLP(sizes, hidden_activation=_SK_TO_MLPLAB[mlp.activation], output_activation=out_act, loss=loss,
              init="glorot", dtype=dt, seed=int(seed))
    net.set_weights(_finite_weights([np.asarray(a) for pair in zip(coefs, intercepts) for a in pair], "layer"))
    params: dict[str, Any] = dict(
        learning_rate_init=float(mlp.learning_rate_init), alpha=float(mlp.alpha), max_iter=int(mlp.max_iter),
        tol=float(mlp.tol), n_iter_no_change=int(mlp.n_iter_no_change), early_stopping=bool(mlp.early_stopping),
        validation_fraction=float(mlp.validation_fraction), shuffle=bool(mlp.shuffle),
        random_state=mlp.random_state if isinstance(mlp.random_state, (int, np.integer)) else None,
    )
    bs = mlp.batch_size
    params["batch_size"] = "auto" if bs == "auto" else int(bs)
    if mlp.solver == "adam":
        params.update(optimizer="adam", beta_1=float(mlp.beta_1), beta_2=float(mlp.beta_2), epsilon=float(mlp.epsilon))
    elif mlp.solver == "sgd":
        params.update(optimizer="sgd", momentum=float(mlp.momentum), nesterov=bool(mlp.nesterovs_momentum))
    est = MLPClassifier.from_mlp(net, np.asarray(mlp.classes_), int(mlp.n_features_in_), **params)
    if hasattr(mlp, "feature_names_in_"):
        est.feature_names_in_ = np.array(mlp.feature_names_in_, dtype=object)  # (a copy)
    est.n_iter_ = int(getattr(mlp, "n_iter_", 0))
    est.n_samples_seen_ = int(getattr(mlp, "t_", 0))  # scikit-learn's t_ counts samples, not steps
    est.loss_curve_ = [float(v) for v in (getattr(mlp, "loss_curve_", None) or [])]
    if getattr(mlp, "loss_", None) is not None:
        est.loss_ = float(mlp.loss_)
    # the stopping state (scikit-learn's stochastic solvers set it; lbfgs has none: a fresh rule)
    if hasattr(mlp, "best_loss_"):
        est.best_loss_ = None if mlp.best_loss_ is None else float(mlp.best_loss_)
        est._no_improvement_count = int(getattr(mlp, "_no_improvement_count", 0))
    scores = getattr(mlp, "validation_scores_", None)
    if scores is not None:
        est.validation_scores_ = [float(v) for v in scores]
        est.validation_loss_curve_ = [float("nan")] * len(scores)  # (not recorded by scikit-learn)
        best = getattr(mlp, "best_validation_score_", None)
        est.best_validation_score_ = -np.inf if best is None else float(best)
    if est.best_loss_ is None:
        if est.validation_scores_ is None:  # (inconsistent: start the rule afresh)
            est.best_loss_ = np.inf
        else:  # the weights an early-stopping fit restores; scikit-learn's fit ended on them
            coefs, intercepts = getattr(mlp, "_best_coefs", coefs), getattr(mlp, "_best_intercepts", intercepts)
            est._best_weights = [np.array(a, dtype=dt) for pair in zip(coefs, intercepts) for a in pair]
    return est


def to_sklearn(est: MLPClassifier) -> Any:
    """A fitted ``sklearn.neural_network.MLPClassifier`` with the weights of ``est``.

    Only ``output='softmax'`` networks (softmax, or one logistic unit for two classes) with
    scikit-learn's hidden activations (identity, logistic, tanh, relu) have an equivalent.
    The arrays keep ``est``'s dtype, and the weights, hence the predictions, are the same. The
    hyperparameters are copied under scikit-learn's names; later fits agree where both libraries
    have the setting and differ where they do not:

    * Adam (``epsilon`` included: both add it to the uncorrected ``sqrt(v)``) and SGD, with or
      without momentum or Nesterov, and the ``alpha`` penalty map exactly: from the same
      weights, the same minibatches give the same steps, up to float rounding.
    * scikit-learn has no RMSprop: ``optimizer='rmsprop'`` becomes ``solver='adam'``.
    * It has no full batch (its ``batch_size`` is a number of samples): ``batch_size=None`` or
      ``'full'`` becomes ``'auto'``, that is ``min(200, n_samples)``.
    * ``schedule`` is not carried (``learning_rate='constant'``: scikit-learn's ``'invscaling'``
      counts samples where mlplab's ``inverse_scaling`` counts epochs), nor are ``dropout`` and
      ``class_weight``, which scikit-learn does not have.
    * scikit-learn's ``t_`` is the number of training samples seen (its ``'invscaling'`` rate
      reads it), which is ``est.n_samples_seen_`` (``est.t_`` counts optimizer steps instead,
      and the number of rows per step is not fixed). A model made by ``from_mlp`` or loaded
      from a file saved before that count was recorded gives 0.

    The model can continue training in scikit-learn (``warm_start`` or ``partial_fit``) where
    ``est`` stopped: its stopping state (best loss or validation score, the count of epochs
    without improvement, and with early stopping the best weights, those of ``est``) is set
    as scikit-learn's own fit leaves it; the stopping rule starts afresh where ``est``'s state
    is the other rule's (``early_stopping`` changed since its last fit, or a model made by
    ``from_mlp``), as ``est``'s own next fit would. Its optimizer starts afresh.
    """
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from sklearn.preprocessing import LabelBinarizer

    _check_fitted_mlplab(est)
    net = est.net_
    if net.loss.name not in ("cross_entropy", "binary_cross_entropy"):
        raise ValueError(f"scikit-learn's MLPClassifier has no {net.loss.name!r} output "
                         "(only output='softmax' converts)")
    hidden = get_activation(net.hidden_activation).name
    if hidden not in _MLPLAB_TO_SK:
        raise ValueError(f"scikit-learn has no hidden activation {hidden!r} "
                         f"(it knows {sorted(_MLPLAB_TO_SK)})")
    if net.shared_bias:
        raise ValueError("networks with a shared scalar bias have no scikit-learn equivalent")
    solver = est.optimizer if est.optimizer in ("adam", "sgd") else "adam"  # (no rmsprop there)
    bs = est.batch_size
    sk = SkMLPClassifier(
        hidden_layer_sizes=tuple(net.sizes[1:-1]), activation=_MLPLAB_TO_SK[hidden], solver=solver,
        alpha=float(est.alpha), batch_size="auto" if bs in ("auto", None, "full") else int(bs),
        learning_rate_init=float(est.learning_rate_init), max_iter=int(est.max_iter), shuffle=bool(est.shuffle),
        random_state=est.random_state if isinstance(est.random_state, (int, np.integer)) else None,
        tol=float(est.tol), momentum=float(est.momentum),
        nesterovs_momentum=bool(est.nesterov), early_stopping=bool(est.early_stopping),
        validation_fraction=float(est.validation_fraction), beta_1=float(est.beta_1), beta_2=float(est.beta_2),
        epsilon=float(est.epsilon), n_iter_no_change=int(est.n_iter_no_change),
    )
    pairs = _weights(est)
    sk.coefs_ = [W.copy() for W, _ in pairs]
    sk.intercepts_ = [b.copy() for _, b in pairs]
    sk.n_features_in_ = int(est.n_features_in_)
    if hasattr(est, "feature_names_in_"):
        sk.feature_names_in_ = est.feature_names_in_.copy()
    sk.n_layers_ = len(net.sizes)
    sk.n_outputs_ = net.sizes[-1]
    sk.out_activation_ = "logistic" if net.sizes[-1] == 1 else "softmax"
    sk.classes_ = est.classes_.copy()
    sk._label_binarizer = LabelBinarizer().fit(est.classes_)
    sk.n_iter_ = int(est.n_iter_)
    sk.t_ = int(getattr(est, "n_samples_seen_", 0))  # samples seen, not est.t_ (optimizer steps)
    sk.loss_curve_ = list(est.loss_curve_)
    if est.loss_curve_:
        sk.loss_ = float(est.loss_curve_[-1])
    # The stopping state, which scikit-learn's warm fit / partial_fit reads and its first fit
    # (_initialize) sets: the best loss or validation score, the count of epochs without
    # improvement, and the best weights an early-stopping fit restores at its end (est's: mlplab's
    # early stopping restored its best too). validation_scores_ is copied: scikit-learn appends to it.
    sk.best_loss_ = est.best_loss_
    sk.validation_scores_ = None if est.validation_scores_ is None else list(est.validation_scores_)
    sk.best_validation_score_ = est.best_validation_score_
    sk._no_improvement_count = int(est._no_improvement_count)
    sk._best_coefs = [c.copy() for c in sk.coefs_]
    sk._best_intercepts = [b.copy() for b in sk.intercepts_]
    early = bool(est.early_stopping)
    if (est.best_loss_ is None) != early:
        # est's state is the other rule's (early_stopping changed since its fit, or a model made by
        # from_mlp/from_sklearn): the rule starts afresh, as mlplab's own next fit would start it
        sk._no_improvement_count = 0
        sk.best_loss_ = None if early else np.inf
        if early:
            sk.best_validation_score_ = -np.inf
            if sk.validation_scores_ is None:
                sk.validation_scores_ = []
    return sk


# -- PyTorch --------------------------------------------------------------------------------
def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("PyTorch is needed for to_torch/from_torch: pip install 'mlplab[torch]'") from exc
    return torch


def _torch_activation(name_or_spec: Any):
    torch = _torch()
    act = get_activation(name_or_spec)
    name = act.name
    if name == "relu":
        return torch.nn.ReLU()
    if name == "sigmoid":
        return torch.nn.Sigmoid()
    if name == "tanh":
        return torch.nn.Tanh()
    if name == "identity":
        return torch.nn.Identity()
    if name == "leaky_relu":
        return torch.nn.LeakyReLU(negative_slope=float(act.config().get("slope", 0.01)))
    if name == "softmax":
        return torch.nn.Softmax(dim=1)
    raise ValueError(f"activation {name!r} has no PyTorch module mapping")


def to_torch(est: MLPClassifier, output_activation: bool = False):
    """``torch.nn.Sequential`` computing ``est``'s network: ``Linear`` layers (weights
    transposed to PyTorch's ``(out, in)``) with activation modules between them.

    By default the model ends where mlplab's graph ends: at the logits for ``output='softmax'``
    (feed them to ``CrossEntropyLoss`` / ``BCEWithLogitsLoss``), at the sigmoid outputs for
    ``'sigmoid-mse'``. A network with dropout gets ``Dropout`` after each hidden activation
    (active only in ``train()`` mode, like mlplab's). ``output_activation=True`` appends the ``Softmax(dim=1)`` / ``Sigmoid``
    of fused losses, so the model outputs probabilities (one column for two classes).
    Parameters keep ``est``'s dtype.
    """
    torch = _torch()
    _check_fitted_mlplab(est)
    net = est.net_
    if net.shared_bias:
        raise ValueError("networks with a shared scalar bias have no torch.nn.Linear equivalent")
    tdtype = torch.float32 if net.dtype == np.float32 else torch.float64
    modules: list[Any] = []
    pairs = _weights(est)
    for i, (W, b) in enumerate(pairs):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=tdtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        modules.append(lin)
        if i < len(pairs) - 1:
            modules.append(_torch_activation(net.hidden_activation))
            if net.dropout > 0:  # inverted dropout after each hidden activation, as in mlplab
                modules.append(torch.nn.Dropout(net.dropout))
    fused = net.loss.fused_activation
    if fused is None:
        modules.append(_torch_activation(net.output_activation))
    elif output_activation:
        modules.append(_torch_activation(fused))
    return torch.nn.Sequential(*modules)


_TORCH_ACTIVATIONS = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Identity": "identity",
                      "LeakyReLU": "leaky_relu", "Softmax": "softmax"}


def from_torch(sequential: Any, classes: Sequence[Any], output: str | None = None, **params: Any) -> MLPClassifier:
    """A fitted :class:`~mlplab.estimator.MLPClassifier` from ``Sequential(Linear, act, ...,
    Linear[, output act])`` with one activation type for every hidden layer.

    The output is read from the model: a final ``Linear`` with k >= 2 units (logits) or a final
    ``Softmax`` is ``output='softmax'``; a final ``Linear`` with one unit (a logit) or
    ``Linear(., 1) + Sigmoid`` is the binary sigmoid/cross-entropy unit; ``Sigmoid`` on k >= 2
    units is ``'sigmoid-mse'`` (the textbook's network) unless ``output='softmax'`` is passed
    (which then is refused: sigmoid outputs are not softmax logits). ``classes`` are the labels
    of the output units in order (sorted); ``params`` are hyperparameters for later fits.

    Two classes take one output unit in :class:`~mlplab.estimator.MLPClassifier` (as in
    scikit-learn). A two-logit head (``Linear(., 2)``, trained with ``CrossEntropyLoss``, with or
    without a final ``Softmax``) is folded into that unit: ``softmax(z0, z1)[1] =
    sigmoid(z1 - z0)``, so the last layer becomes ``W[:, 1] - W[:, 0]``, ``b[1] - b[0]``. That is
    exact up to one rounding of each folded weight to the model's dtype (the difference of two
    float32 weights is exact in float64): the same predictions and probabilities, to float
    rounding. ``Sigmoid`` over two units for two classes (two independent sigmoid outputs) has
    no one-unit equivalent and is refused.
    """
    torch = _torch()
    mods = list(sequential.children()) if isinstance(sequential, torch.nn.Module) else list(sequential)
    # Dropout acts in training only: kept as the estimator's one rate for later fits
    rates = {float(m.p) for m in mods if isinstance(m, torch.nn.Dropout)}
    if len(rates) > 1:
        raise ValueError(f"Dropout layers with different rates {sorted(rates)}: MLPClassifier has one dropout rate")
    dropout = rates.pop() if rates else 0.0
    mods = [m for m in mods if not isinstance(m, torch.nn.Dropout)]
    linears = [m for m in mods if isinstance(m, torch.nn.Linear)]
    if not linears or not isinstance(mods[0], torch.nn.Linear):
        raise ValueError("the model must start with a torch.nn.Linear layer")
    hidden: list[str] = []
    slope = None
    final: str | None = None
    for i, m in enumerate(mods):
        if isinstance(m, torch.nn.Linear):
            if i + 1 < len(mods) and isinstance(mods[i + 1], torch.nn.Linear):
                raise ValueError("two Linear layers without an activation between them are not supported")
            continue
        name = _TORCH_ACTIVATIONS.get(type(m).__name__)
        if name is None:
            raise ValueError(f"unsupported module {type(m).__name__} (supported: Linear, Dropout, "
                             f"{', '.join(sorted(_TORCH_ACTIVATIONS))})")
        if i == len(mods) - 1:
            final = name
        else:
            hidden.append(name)
            if name == "leaky_relu":
                slope = float(m.negative_slope)
        if name == "softmax" and (i != len(mods) - 1 or getattr(m, "dim", 1) not in (1, -1)):
            raise ValueError("Softmax is only supported as the last module, over dim=1")
    if len(set(hidden)) > 1:
        raise ValueError(f"every hidden layer must use the same activation, got {hidden}")
    if len(hidden) != len(linears) - 1:
        raise ValueError("expected one activation module after every Linear but the last")
    for a, b in zip(linears[:-1], linears[1:]):
        if a.out_features != b.in_features:
            raise ValueError(f"Linear sizes do not chain: {a.out_features} -> {b.in_features}")
    if any(lin.bias is None for lin in linears):
        raise ValueError("Linear layers without bias are not supported")
    n_out = linears[-1].out_features
    # a two-logit softmax head for two classes: folded into the one logit z1 - z0 below
    fold = n_out == 2 and len(classes) == 2 and final in (None, "softmax") and output != "sigmoid-mse"
    if n_out == 2 and len(classes) == 2 and final == "sigmoid":
        raise ValueError("Sigmoid over 2 output units for 2 classes is not supported: MLPClassifier's two-class "
                         "network has one output unit (a Linear(., 2) head without Sigmoid is folded into one)")
    if fold:
        n_out = 1
    if final in (None, "softmax"):
        if n_out == 1:
            if final == "softmax" and not fold:
                raise ValueError("Softmax over one unit is constant")
            out_act, loss = "sigmoid", "binary_cross_entropy"
        else:
            out_act, loss = "softmax", "cross_entropy"
    elif final == "sigmoid":
        if n_out == 1:
            out_act, loss = "sigmoid", "binary_cross_entropy"
        else:
            if output == "softmax":
                raise ValueError("a Sigmoid output over several units is not a softmax model")
            out_act, loss = "sigmoid", "mse"
    else:
        raise ValueError(f"unsupported output activation {final!r}")
    if output is not None and output not in ("softmax", "sigmoid-mse"):
        raise ValueError(f"output must be 'softmax' or 'sigmoid-mse', got {output!r}")
    if output == "sigmoid-mse" and loss != "mse" and not (n_out == 1 and final == "sigmoid"):
        raise ValueError("output='sigmoid-mse' needs a final Sigmoid module")
    if output == "sigmoid-mse" and n_out == 1:
        loss = "mse"
    hidden_spec = hidden[0] if hidden else "relu"
    # the estimator names activations by string only, and activation='leaky_relu' is mlplab's
    # default slope (0.01, also PyTorch's default): that is the only slope it can represent
    default_slope = get_activation("leaky_relu").config()["slope"]
    if hidden_spec == "leaky_relu" and slope != default_slope:
        raise ValueError(f"LeakyReLU(negative_slope={slope}) hidden layers are not supported by MLPClassifier "
                         f"(activation='leaky_relu' has negative_slope={default_slope})")
    dtypes = {p.dtype for lin in linears for p in (lin.weight, lin.bias)}
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
        names = ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
        raise ValueError(f"the Linear layers' parameters must all be float32 or all float64, got {names}")
    dt = "float32" if dtypes == {torch.float32} else "float64"
    sizes = [linears[0].in_features] + [lin.out_features for lin in linears[:-1]] + [n_out]
    net = MLP(sizes, hidden_activation=hidden_spec, output_activation=out_act, loss=loss, init="glorot",
              dtype=dt, dropout=dropout,
              seed=int(rs) if isinstance(rs := params.get("random_state"), (int, np.integer)) and rs >= 0 else 0)
    arrays = []
    for lin in linears:
        arrays.append(lin.weight.detach().cpu().numpy().T)
        arrays.append(lin.bias.detach().cpu().numpy())
    _finite_weights(arrays, "Linear layer")
    if fold:  # (the differences in float64, exact for float32 weights, then rounded once)
        W, b = arrays[-2].astype(np.float64), arrays[-1].astype(np.float64)
        with np.errstate(over="ignore"):
            arrays[-2], arrays[-1] = (W[:, 1:] - W[:, :1]).astype(dt), (b[1:] - b[:1]).astype(dt)
        _finite_weights(arrays, "folded Linear layer")
    net.set_weights(arrays)
    return MLPClassifier.from_mlp(net, np.asarray(classes), **params)
