import os
from pathlib import Path

import pytest

TINY = """
name = "tiny"
runner = "generic"
protocol = "corrected"
[data]
dataset = "digits"
[split]
kind = "canonical"
[preprocessing]
scaling = "unit"
dtype = "float32"
[model]
hidden = [16]
hidden_activation = "relu"
[training]
optimizer = "sgd"
lr = 0.1
batch_size = 32
epochs = 3
seed = 7
record_epochs = [1, 3]
[sweep]
"training.lr" = [0.05, 0.2]
"model.hidden" = [[8], [16]]
"""


@pytest.fixture
def tiny_spec(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


@pytest.fixture
def mnist_data_dir():
    root = os.environ.get("MLPLAB_DATA_DIR")
    if not root or not (Path(root) / "mnist").is_dir():
        pytest.skip("MLPLAB_DATA_DIR with an mnist/ folder is not set: the --quick experiment runs need real MNIST")
    return root
