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
