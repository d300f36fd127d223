"""Pieces of the built-in protocols that need no MNIST."""

import numpy as np

from mlplab.experiments.protocols.ovr_logistic import train_stacked
from mlplab.experiments.protocols.relu_softmax import mae_score
from mlplab.experiments.protocols.two_hidden import ShuffleStream, legacy_weights, parse_curve


def test_stacked_columns_equal_single_neuron_mlps(digits):
    from mlplab.network import MLP
    from mlplab.training import Trainer

    X, y = digits
    y01 = (y == 3).astype(np.int64)
    rng = np.random.default_rng(0)
    W0 = np.stack([rng.uniform(0, 1, 64), np.zeros(64), rng.uniform(0, 1, 64)], axis=1)
    lrs = np.array([0.01, 0.05, 0.001])
    W, b, costs, errors = train_stacked(X, y01, W0, lrs, epochs=25, cost_every=10)
    assert [c[0] for c in costs] == [0, 10, 20] and errors == [None] * 3
    for j in range(3):
        net = MLP([64, 1], output_activation="sigmoid", loss="binary_cross_entropy", dtype="float64")
        net.set_weights([W0[:, j:j + 1], np.zeros(1)])
        Trainer(net, "sgd", lr=float(lrs[j]), batch_size=None, train_metrics="none").fit(X, y01, 25)
        np.testing.assert_allclose(net.parameters()[0][:, 0], W[:, j], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(net.parameters()[1][0], b[j], rtol=1e-10, atol=1e-12)


def test_legacy_weights_follow_textbook_order():
    params = legacy_weights([784, 500, 500, 10], 123)
    rs = np.random.RandomState(123)
    w_h = rs.normal(0, 0.1, (500, 784))
    w_h2 = rs.normal(0, 0.1, (500, 500))
    w_out = rs.normal(0, 0.1, (10, 500))
    for got, want in zip(params[::2], (w_h, w_h2, w_out)):
        assert np.array_equal(got, want.T)
    assert all(not b.any() for b in params[1::2])


def test_shuffle_stream_replays_global_rng():
    s = ShuffleStream(123)
    np.random.seed(123)
    for n in (49000, 49000, 21000):
        idx = np.arange(n)
        np.random.shuffle(idx)
        assert np.array_equal(s.shuffled(n), idx)


def test_label_mae_score_of_zero_predictor():
    y = np.array([0, 1, 2, 9])
    assert mae_score(np.zeros(4, dtype=np.int64), y) == 100 - 100 * 3.0
    tr, te = parse_curve("84.89/84.79 87.68/87.52")
    assert tr == [84.89, 87.68] and te == [84.79, 87.52]
