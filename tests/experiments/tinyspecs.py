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
