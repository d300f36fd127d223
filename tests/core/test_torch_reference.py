"""Forward values, gradients and optimizer steps equal PyTorch's on the same weights."""

import numpy as np
import pytest

from mlplab.network import MLP
from mlplab.optimizers import get_optimizer

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0); CI installs it")

ACT = {
    "identity": lambda t: t,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.01),
    "softmax": lambda t: torch.softmax(t, dim=1),
}


def _torch_loss(out, y, loss, n_out):
    if loss == "mse":
        onehot = torch.nn.functional.one_hot(y, n_out).double()
        return ((out - onehot) ** 2).sum(dim=1).mean()
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(out, y)
    onehot = torch.nn.functional.one_hot(y, n_out).double() if n_out > 1 else y.double()[:, None]
    return torch.nn.functional.binary_cross_entropy_with_logits(out, onehot, reduction="sum") / out.shape[0]


CASES = [
    ([6, 5, 4], "sigmoid", "sigmoid", "mse"),
    ([6, 8, 7, 4], "tanh", "softmax", "cross_entropy"),
    ([6, 8, 7, 5, 4], "relu", "softmax", "cross_entropy"),
    ([6, 8, 4], "leaky_relu", "identity", "mse"),
    ([6, 8, 4], "sigmoid", "sigmoid", "binary_cross_entropy"),
    ([6, 8, 1], "tanh", "sigmoid", "binary_cross_entropy"),
]


@pytest.mark.parametrize("sizes,hidden,output,loss", CASES)
def test_forward_and_gradients_match_autograd(sizes, hidden, output, loss):
    rng = np.random.default_rng(3)
    net = MLP(sizes, hidden, output, loss, init="glorot", dtype="float64", seed=5)
    for layer in net.dense_layers:
        layer.b[...] = rng.normal(0, 0.1, layer.b.shape)
    X = rng.normal(size=(11, sizes[0]))
    y = rng.integers(0, max(sizes[-1], 2), 11)
    value = net.loss_and_gradients(X, y)
    grads = [g.copy() for g in net.gradients()]

    params = [torch.tensor(p.copy(), requires_grad=True) for p in net.parameters()]
    h = torch.tensor(X)
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < n_layers - 1:
            h = ACT[hidden](h)
        elif loss == "mse":
            h = ACT[output](h)
    t_loss = _torch_loss(h, torch.tensor(y), loss, sizes[-1])
    t_loss.backward()
    assert value == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(net.forward(X), h.detach().numpy(), rtol=1e-12, atol=1e-14)
    for g, p in zip(grads, params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("name,torch_cls,kw", [
    ("sgd", "SGD", {"lr": 0.1}),
    ({"name": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, "SGD",
     {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("rmsprop", "RMSprop", {"lr": 0.001}),
    ("adam", "Adam", {"lr": 0.01}),
])
def test_optimizer_steps_match_torch(name, torch_cls, kw):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(5, 4))
    grads = [rng.normal(size=(5, 4)) for _ in range(5)]
    ours = p0.copy()
    opt = get_optimizer(name, [ours], lr=kw["lr"])
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = getattr(torch.optim, torch_cls)([tp], **kw)
    for g in grads:
        opt.step([g.copy()])
        tp.grad = torch.tensor(g.copy())
        topt.step()
    np.testing.assert_allclose(ours, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
