"""Tiny experiment specs (digits data, seconds to run) shared by the experiment tests."""

#: report 1's two-hidden runner on 400 digits, both protocols, the mlplab model only
TWO_HIDDEN = """
name = "two-tiny"
runner = "two-hidden-layers"
protocol = "both"
[data]
dataset = "digits"
max_train_samples = 400
max_test_samples = 200
[split]
kind = "sklearn"
test_fraction = 0.3
seed = 123
[preprocessing]
scaling = "symmetric"
[model]
hidden = [8, 8]
hidden_activation = "sigmoid"
output_activation = "sigmoid"
loss = "mse"
init = "normal"
init_params = { std = 0.1 }
[training]
optimizer = "sgd"
lr = 0.1
batch_size = 100
epochs = 2
seed = 123
[options]
models = ["two-hidden"]
torch = false
"""


def generic(name: str) -> str:
    """The generic runner on digits: one 8-unit hidden layer, one epoch, one cell."""
    return f"""
name = "{name}"
runner = "generic"
protocol = "corrected"
[data]
dataset = "digits"
[split]
kind = "canonical"
[model]
hidden = [8]
[training]
batch_size = 64
epochs = 1
seed = 3
record_epochs = [1]
"""


def ovr(digits: str = "[0, 1]", n_pos: int = 50, lrs: str = "[0.01, 0.5]", name: str = "ovr-tiny",
        quick: bool = True) -> str:
    """Report 2's one-vs-rest runner on digits, both protocols, float64, full batch: its digits,
    positives per detector and learning rates (TOML literals), with a 3-epoch ``[quick]``."""
    text = f"""
name = "{name}"
runner = "ovr-logistic"
protocol = "both"
[data]
dataset = "digits"
[split]
kind = "canonical"
[preprocessing]
dtype = "float64"
[training]
epochs = 5
seed = 0
batch_size = 0
[options]
digits = {digits}
lrs = {lrs}
inits = ["uniform01", "zeros"]
n_pos = {n_pos}
cost_every = 2
"""
    return text + ("[quick]\ntraining = { epochs = 3 }\n" if quick else "")


def relu(lrs: str = "[0.05]", protocol: str = "both", epochs: int = 3, record_epochs: str = "[2, 3]",
         batch_size: int = 0, cost_every: int = 1, published: str = "") -> str:
    """Report 2's relu-softmax runner on digits (8 ReLU units, softmax): its learning rates,
    protocol, epochs and snapshots (TOML literals), and ``published``, the lines of a
    ``[report.published]`` table (none when empty)."""
    text = f"""
name = "relu-tiny"
runner = "relu-softmax"
protocol = "{protocol}"
[data]
dataset = "digits"
[split]
kind = "canonical"
[model]
hidden = [8]
hidden_activation = "relu"
output_activation = "softmax"
[training]
batch_size = {batch_size}
epochs = {epochs}
record_epochs = {record_epochs}
cost_every = {cost_every}
seed = 0
[options]
lrs = {lrs}
"""
    return text + (f"[report.published]\n{published}\n" if published else "")
