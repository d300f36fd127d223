"""Reference training with PyTorch (optional): the same architecture and recipe as an mlplab MLP.

The trained weights are copied into an equivalent :class:`mlplab.network.MLP`, so the run
folder, metrics and figures are produced by exactly the same code as for mlplab's models.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mlplab.errors import ConfigError


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def train_torch(sizes: list[int], hidden_activation: str, optimizer: dict[str, Any], batch_size: int,
                epochs: int, seed: int, X: np.ndarray, y: np.ndarray, X_eval: np.ndarray | None,
                y_eval: np.ndarray | None,
                dropout: float = 0.0, schedule: dict[str, Any] | None = None,
                X_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
                divergence_factor: float | None = 1e4) -> dict[str, Any]:
    """Train ``sizes`` (linear output + CrossEntropyLoss) with seeded torch; returns weights in
    mlplab's layout (W (fan_in, fan_out), b) and per-epoch history (loss, eval accuracy, time).
    An epoch diverges by the rules of mlplab's :class:`~mlplab.training.Trainer` (its
    ``divergence_factor`` here, the same default): a non-finite epoch loss, weights gone
    non-finite or too large (:meth:`MLP.finite_weights <mlplab.network.MLP.finite_weights>`'s
    test), or an epoch loss above ``divergence_factor`` times the first epoch's (``None``: not
    checked). It raises :class:`~mlplab.errors.DivergenceError`, worded as the Trainer's, and
    the cell is recorded as diverged: a learning rate that diverges for mlplab's model is not
    a finished (garbage) model for PyTorch's in the same comparison table.

    ``X_eval=None`` skips the per-epoch evaluation pass (its accuracies are then None). The
    optimizers use torch's multi-tensor (``foreach``) implementation, its fastest on the CPU."""
    import torch
    from torch import nn

    from mlplab.experiments import sweep

    sweep.pin_new_libraries()  # torch was not loaded when the cell pinned its threads
    torch.manual_seed(seed)
    acts = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(acts[hidden_activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))
    model = nn.Sequential(*layers)
    name = optimizer["name"]
    params = {k: v for k, v in optimizer.items() if k not in ("name", "lr")}
    lr = float(optimizer["lr"])
    if name == "rmsprop":
        opt = torch.optim.RMSprop(model.parameters(), lr=lr, alpha=params.get("alpha", 0.99),
                                  eps=params.get("eps", 1e-8), foreach=True)
    elif name == "adam":
        if params.get("eps_on", "v_hat") != "v_hat":  # torch adds eps to sqrt(v_hat) only
            raise ConfigError(f"adam eps_on={params['eps_on']!r} has no PyTorch equivalent (torch.optim.Adam "
                              "adds eps to the bias-corrected sqrt(v_hat): eps_on='v_hat')")
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(params.get("beta1", 0.9), params.get("beta2", 0.999)),
                               eps=params.get("eps", 1e-8), weight_decay=params.get("weight_decay", 0.0),
                               foreach=True)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=params.get("momentum", 0.0),
                              nesterov=params.get("nesterov", False), foreach=True)
    sched = None
    if schedule and schedule.get("name") == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(schedule.get("epochs", epochs)),
                                                           eta_min=float(schedule.get("min_lr", 0.0)))
    loss_fn = nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)), torch.from_numpy(np.asarray(y, dtype=np.int64))
    Xe = None if X_eval is None else torch.from_numpy(np.ascontiguousarray(X_eval, dtype=np.float32))
    Xs = None if X_test is None else torch.from_numpy(np.ascontiguousarray(X_test, dtype=np.float32))
    g = torch.Generator().manual_seed(seed)
    n = Xt.shape[0]
    hist: dict[str, list] = {"epoch": [], "loss": [], "accuracy": [], "val_accuracy": [], "test_accuracy": [],
                             "time_s": [], "elapsed_s": []}
    elapsed = 0.0
    first_loss = None  # the first epoch's mean loss, the divergence guard's yardstick
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        total, correct = 0.0, 0
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            xb, yb = Xt[idx], yt[idx]
            opt.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int((out.argmax(1) == yb).sum())
        if sched is not None:
            sched.step()
        secs = time.perf_counter() - t0
        first_loss = _check_divergence(model, total / n, first_loss, divergence_factor, epoch, lr)
        elapsed += secs
        model.eval()
        with torch.no_grad():
            acc = None if Xe is None else float((model(Xe).argmax(1).numpy() == y_eval).mean())
            tacc = None if Xs is None else float((model(Xs).argmax(1).numpy() == y_test).mean())
        hist["epoch"].append(epoch)
        hist["loss"].append(total / n)
        hist["accuracy"].append(correct / n)
        hist["val_accuracy"].append(acc)
        hist["test_accuracy"].append(tacc)
        hist["time_s"].append(secs)
        hist["elapsed_s"].append(elapsed)
    weights = []
    for layer in model:
        if isinstance(layer, nn.Linear):
            weights.append(layer.weight.detach().numpy().T.copy())
            weights.append(layer.bias.detach().numpy().copy())
    model.eval()

    def predict(Xb: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(np.ascontiguousarray(Xb, dtype=np.float32))), 1).numpy()

    return {"weights": weights, "history": hist, "train_time_s": elapsed, "predict": predict,
            "torch_version": torch.__version__}


def _check_divergence(model, loss: float, first_loss: float | None, factor: float | None, epoch: int,
                      lr: float) -> float:
    """Raise :class:`~mlplab.errors.DivergenceError` if the epoch's mean ``loss`` is not finite,
    a parameter of ``model`` is non-finite or too large (:func:`mlplab.network.finite_arrays`, on
    the float32 tensors themselves: :meth:`MLP.finite_weights <mlplab.network.MLP.finite_weights>`'s
    test), or the loss exploded past ``factor`` times ``first_loss``
    (:func:`mlplab.training.loss_exploded`): :class:`~mlplab.training.Trainer`'s checks, in its
    order and words. Returns the first epoch's loss (``loss`` itself at the first epoch).
    Read only: a training that does not diverge is bit for bit what it was without the checks."""
    import math

    import torch

    from mlplab.network import finite_arrays
    from mlplab.training import divergence_error, divergence_what, loss_exploded

    if not math.isfinite(loss):
        raise divergence_error(divergence_what(loss), epoch, lr)
    with torch.no_grad():  # numpy views of the parameters: nothing copied, nothing changed
        if not finite_arrays(p.detach().numpy() for p in model.parameters()):
            raise divergence_error(divergence_what(None), epoch, lr)
    if first_loss is None:
        return loss
    if loss_exploded(loss, first_loss, factor):
        raise divergence_error(divergence_what(loss), epoch, lr)
    return first_loss
