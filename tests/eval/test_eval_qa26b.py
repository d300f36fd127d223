"""New-user audit qa26: a large picture Pillow only warns about is read without its warning
(the picture is read within bounded memory); runs compared across datasets also get the
warning about different test sets within a dataset."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from mlplab.imageio import image_to_input
from mlplab.report import comparison_warnings


def test_a_large_picture_prints_no_pillow_warning(tmp_path, monkeypatch):
    img = np.full((300, 300), 255, np.uint8)
    img[60:240, 140:160] = 0  # a thick "1"
    path = tmp_path / "one.png"
    Image.fromarray(img).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60_000)  # 90,000 pixels: Pillow warns (not refuses)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = image_to_input(path, (28, 28))
    assert x.size == 784 and float(x.max()) > 0


def test_compare_names_every_kind_of_difference():
    rows = [{"run": "a", "dataset": "mnist", "split": "canonical", "test_n_samples": 10000},
            {"run": "b", "dataset": "mnist", "split": "stratified", "test_n_samples": 21000},
            {"run": "c", "dataset": "digits", "split": "canonical", "test_n_samples": 540}]
    got = comparison_warnings(rows)
    assert len(got) == 2
    assert "different datasets" in got[0]
    assert "of mnist were scored on different test sets" in got[1] and "c:" not in got[1]
