"""``mlplab predict`` serves models trained on dark-ink-on-light images, and huge pictures.

* A run records the ink polarity of its dataset in the model file (``preprocessing.ink``);
  predict converts every picture to that polarity (``--ink`` overrides it; files without the
  field keep MNIST's light-on-dark).
* A picture near Pillow's size limit is averaged down before any float copy is made, while
  normal-size pictures give exactly the rows they gave before.
"""

from __future__ import annotations

import hashlib
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evalhelpers import seven as _seven
from mlplab.imageio import WORK_PIXELS, dataset_ink, image_to_input


# ---------------------------------------------------------------- measuring a dataset's polarity

def test_the_bundled_polarity_is_light_and_an_inverted_dataset_is_dark():
    from mlplab.data import load_dataset

    ds = load_dataset("digits")
    assert dataset_ink(ds.X_train, ds.image_shape) == "light"
    assert dataset_ink(ds.pixel_max - ds.X_train, ds.image_shape) == "dark"
    sevens = np.stack([_seven().ravel()] * 3)
    assert dataset_ink(sevens, (28, 28)) == "light"
    assert dataset_ink(255 - sevens, (28, 28)) == "dark"
    # a grey background with black ink is dark ink too: the background is lighter than the strokes
    assert dataset_ink(np.where(sevens > 0, 0, 100).astype(np.uint8), (28, 28)) == "dark"
    # nothing to tell by (blank, not 2-D, too small): MNIST's polarity, as before
    assert dataset_ink(np.zeros((5, 784), np.uint8), (28, 28)) == "light"
    assert dataset_ink(np.full((5, 784), 255, np.uint8), (784,)) == "light"
    assert dataset_ink(np.zeros((0, 784), np.uint8), (28, 28)) == "light"


def test_mnist_is_measured_light(tmp_path):
    from mlplab.data import load_dataset
    from mlplab.errors import MlplabError

    try:
        ds = load_dataset("mnist", download=False)
    except MlplabError:
        pytest.skip("MNIST is not available offline here")
    assert dataset_ink(ds.X_test, ds.image_shape) == "light"


# ---------------------------------------------------------------- end to end: a dark-on-light folder

def _dark_on_light_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits made into a 28x28 dataset of dark ink on white, framed as MNIST was
    (the digit's bounding box scaled to 20 pixels, centred by its centre of mass)."""
    from scipy import ndimage
    from sklearn.datasets import load_digits

    bunch = load_digits()
    out = np.zeros((len(bunch.images), 28, 28))
    for i, img in enumerate(bunch.images):
        rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
        box = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] / 16
        scale = 20 / max(box.shape)
        size = (max(1, round(box.shape[1] * scale)), max(1, round(box.shape[0] * scale)))
        digit = np.clip(np.asarray(Image.fromarray(box.astype(np.float32), "F").resize(size, Image.BICUBIC)), 0, 1)
        cy, cx = ndimage.center_of_mass(digit)
        top, left = min(max(round(14 - cy), 0), 28 - size[1]), min(max(round(14 - cx), 0), 28 - size[0])
        out[i, top:top + size[1], left:left + size[0]] = digit
    return (255 - out * 255).round().astype(np.uint8), bunch.target.astype(np.uint8)


@pytest.fixture(scope="module")
def dark_ink_run(tmp_path_factory):
    """A small model trained through the CLI on a folder of dark-on-light IDX digits, and 300 of
    its training pictures saved as PNGs 4x larger, as a user would have them."""
    from mlplab.cli import main
    from mlplab.data import write_idx

    root = tmp_path_factory.mktemp("dark-ink")
    images, labels = _dark_on_light_digits()
    folder = root / "inked"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images[:1400])
    write_idx(folder / "train-labels-idx1-ubyte", labels[:1400])
    write_idx(folder / "t10k-images-idx3-ubyte", images[1400:])
    write_idx(folder / "t10k-labels-idx1-ubyte", labels[1400:])
    pics = []
    (root / "pics").mkdir()
    for i, img in enumerate(images[:300]):
        pics.append(root / "pics" / f"{i:03d}.png")
        Image.fromarray(img).resize((112, 112), Image.BICUBIC).save(pics[-1])
    assert main(["train", "--dataset", str(folder), "--hidden", "32", "--scaling", "symmetric", "--epochs", "30",
                 "--batch-size", "20", "--seed", "0", "--out", str(root / "run"), "--no-report", "--quiet"]) == 0
    return root / "run" / "model.npz", images[:300], labels[:300], pics


def _predicted(capsys, argv: list[str], n: int) -> np.ndarray:
    from mlplab.cli import main

    capsys.readouterr()
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == n
    return np.array([int(re.match(r".*\.png: (\d+) ", line).group(1)) for line in lines])


def _direct(model: Path, images: np.ndarray) -> np.ndarray:
    from mlplab.data.preprocessing import Scaler
    from mlplab.serialization import load_model

    mf = load_model(model)
    scaler = Scaler.from_dict(mf.preprocessing["scaler"], mf.extra_arrays)
    return mf.net.predict(scaler.transform(images.reshape(len(images), -1), dtype=mf.net.dtype))


def test_a_model_trained_on_dark_ink_predicts_its_own_pictures(dark_ink_run, capsys):
    from mlplab.serialization import load_model

    model, images, labels, pics = dark_ink_run
    assert load_model(model).preprocessing["ink"] == "dark"
    direct = _direct(model, images)
    assert np.mean(direct == labels) >= 0.9  # it learnt the digits (measured: 0.99)
    served = _predicted(capsys, ["predict", str(model), *map(str, pics)], len(pics))
    # measured: 0.99 (before: 0.00, every picture made light on dark)
    assert np.mean(served == direct) >= 0.9
    # the override: the wrong polarity is what predict did before
    wrong = _predicted(capsys, ["predict", str(model), "--ink", "light", *map(str, pics)], len(pics))
    assert np.mean(wrong == direct) < 0.5
    again = _predicted(capsys, ["predict", str(model), "--ink", "dark", *map(str, pics[:20])], 20)
    np.testing.assert_array_equal(again, served[:20])


def test_a_model_file_without_the_field_keeps_light_ink(dark_ink_run, tmp_path, capsys):
    from mlplab.serialization import load_model, save_model

    model, _, _, pics = dark_ink_run
    mf = load_model(model)
    old = {k: v for k, v in mf.preprocessing.items() if k != "ink"}  # as written before it was recorded
    save_model(tmp_path / "old.npz", mf.net, preprocessing=old, classes=mf.classes, extra_arrays=mf.extra_arrays)
    argv = [str(p) for p in pics[:30]]
    as_old = _predicted(capsys, ["predict", str(tmp_path / "old.npz"), *argv], 30)
    as_light = _predicted(capsys, ["predict", str(model), "--ink", "light", *argv], 30)
    np.testing.assert_array_equal(as_old, as_light)


def test_light_ink_runs_record_light(tmp_path):
    from mlplab.cli import main
    from mlplab.serialization import load_model

    assert main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "--max-train-samples", "200",
                 "--out", str(tmp_path / "run"), "--no-report", "--quiet"]) == 0
    assert load_model(tmp_path / "run" / "model.npz").preprocessing["ink"] == "light"


def test_bad_ink_values_are_refused_in_one_line(dark_ink_run, tmp_path, capsys):
    from mlplab.cli import main
    from mlplab.serialization import load_model, save_model

    model, _, _, pics = dark_ink_run
    capsys.readouterr()
    assert main(["predict", str(model), "--ink", "grey", str(pics[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--ink 'grey': valid values are auto, light, dark" in err
    mf = load_model(model)
    save_model(tmp_path / "edited.npz", mf.net, preprocessing={**mf.preprocessing, "ink": "blue"},
               classes=mf.classes, extra_arrays=mf.extra_arrays)
    assert main(["predict", str(tmp_path / "edited.npz"), str(pics[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "edited.npz: preprocessing.ink must be one of light, dark" in err
    assert main(["predict", str(tmp_path / "edited.npz"), "--ink", "dark", str(pics[0])]) == 0


# ---------------------------------------------------------------- bounded memory for huge pictures

def _normal_pictures(folder: Path) -> list[Path]:
    """Pictures within the working size: their rows must stay bit for bit what they were."""
    rng = np.random.default_rng(7)
    big_seven = np.asarray(Image.fromarray(_seven()).resize((280, 280), Image.BILINEAR))
    page = np.full((480, 640), 235, np.uint8)  # a grey page, pencil-grey ink, noise
    page[90:370, 200:480] -= (big_seven * 0.8).astype(np.uint8)
    page = np.clip(page.astype(int) + rng.integers(-6, 7, page.shape), 0, 255).astype(np.uint8)
    Image.fromarray(page).save(folder / "page.png")
    rgba = np.zeros((300, 300, 4), np.uint8)  # black strokes on a transparent sheet
    rgba[10:290, 10:290, 3] = big_seven
    Image.fromarray(rgba, "RGBA").save(folder / "strokes.png")
    rot = Image.fromarray(255 - big_seven).transpose(Image.Transpose.ROTATE_90).convert("RGB")
    ex = rot.getexif()
    ex[0x0112] = 6  # shown upright by viewers
    rot.save(folder / "rotated.png", exif=ex)
    im16 = Image.new("I;16", (280, 280))
    im16.frombytes((big_seven.astype("<u2") * 200).tobytes())
    im16.save(folder / "deep.png")
    pal = Image.fromarray(np.where(big_seven > 127, 1, np.where(big_seven > 20, 2, 0)).astype(np.uint8), "P")
    pal.putpalette([255, 255, 255, 0, 0, 0, 250, 250, 250] + [0] * 759)  # white transparent, light halo
    pal.save(folder / "palette.png", transparency=0)
    edge = np.full((1414, 1414), 255, np.uint8)  # 1,999,396 pixels: just within the working size
    edge[300:1100, 500:1300] = 255 - np.asarray(Image.fromarray(_seven()).resize((800, 800), Image.NEAREST))
    Image.fromarray(edge).save(folder / "edge.png")
    return [folder / n for n in ("page.png", "strokes.png", "rotated.png", "deep.png", "palette.png", "edge.png")]


#: sha256 (first 16 hex digits) of each picture's rows (28x28 MNIST framing, 8x8 digits framing,
#: 28x28 Fashion-MNIST framing with dark ink), computed by mlplab before pictures were averaged
#: down (Pillow 13.0, NumPy 2.4: a Pillow whose resampling differs changes them too). The 8x8
#: rows of page, strokes, rotated and deep changed deliberately when framed digits were scaled to
#: peak at the full range (they peaked at 14/16); their other rows are the ones from before.
_ROWS_BEFORE = {
    "page.png": "8870f08d6565a7e8",
    "strokes.png": "88b455622dba0979",
    "rotated.png": "831632d69a7f2eac",
    "deep.png": "86f0a66ac7e3a1fb",
    "palette.png": "ffcb42b40377ed1c",
    "edge.png": "e9022b881a5e6ccb",
}


def test_normal_pictures_give_the_same_rows_bit_for_bit(tmp_path):
    assert 1414 * 1414 <= WORK_PIXELS
    digests = {}
    for p in _normal_pictures(tmp_path):
        rows = [image_to_input(p, (28, 28), 255), image_to_input(p, (8, 8), 16),
                image_to_input(p, (28, 28), 255, dataset="fashion-mnist", ink="dark")]
        digests[p.name] = hashlib.sha256(b"".join(r.tobytes() for r in rows)).hexdigest()[:16]
    assert digests == _ROWS_BEFORE


def _huge(tmp_path: Path, side: int, mode: str) -> Path:
    seven = np.asarray(Image.fromarray(_seven()).resize((side, side), Image.BILINEAR))
    if mode == "L":
        p = tmp_path / "huge.png"
        Image.fromarray(255 - seven).save(p)
    elif mode == "RGBA":  # black ink on a transparent sheet
        p = tmp_path / "huge_rgba.png"
        rgba = np.zeros((side, side, 4), np.uint8)
        rgba[..., 3] = seven
        Image.fromarray(rgba, "RGBA").save(p)
    elif mode == "I;16":
        p = tmp_path / "huge16.png"
        im = Image.new("I;16", (side, side))
        im.frombytes(((255 - seven).astype("<u2") * 257).tobytes())
        im.save(p)
    elif mode == "P":  # a GIF-like picture: white is the transparent entry, as in palette.png
        p = tmp_path / "huge_palette.png"
        im = Image.fromarray((seven > 127).astype(np.uint8), "P")
        im.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
        im.save(p, transparency=0)
    else:  # a phone photo, stored sideways with its EXIF orientation
        p = tmp_path / "huge.jpg"
        im = Image.fromarray(255 - seven).transpose(Image.Transpose.ROTATE_90).convert("RGB")
        ex = im.getexif()
        ex[0x0112] = 6
        im.save(p, exif=ex, quality=90)
    return p


def _rows_and_peak_mb(path: Path) -> tuple[list[np.ndarray], float]:
    tracemalloc.start()
    try:
        rows = [image_to_input(path, (28, 28), 255), image_to_input(path, (8, 8), 16)]
        return rows, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_an_8000x8000_picture_is_converted_in_bounded_memory(tmp_path):
    small = tmp_path / "small.png"
    Image.fromarray(255 - _seven()).save(small)
    rows, peak = _rows_and_peak_mb(_huge(tmp_path, 8000, "L"))
    # measured: 31 MB (before: 977 MB, float64 copies of all 64 million pixels)
    assert peak < 200, peak
    for row, shape, pmax in zip(rows, ((28, 28), (8, 8)), (255, 16)):
        assert np.corrcoef(row, image_to_input(small, shape, pmax))[0, 1] > 0.97


@pytest.mark.parametrize("mode", ["RGBA", "I;16", "P", "JPEG"])
def test_large_pictures_of_every_kind_are_averaged_down_like_small_ones(tmp_path, mode):
    small = tmp_path / "small.png"
    Image.fromarray(255 - _seven()).save(small)
    rows, peak = _rows_and_peak_mb(_huge(tmp_path, 5000, mode))
    # measured: 31 MB (JPEG, I;16) to 109 MB (RGBA, P) (before: 382 and 1,359 MB)
    assert peak < 200, (mode, peak)
    for row, shape, pmax in zip(rows, ((28, 28), (8, 8)), (255, 16)):
        assert np.corrcoef(row, image_to_input(small, shape, pmax))[0, 1] > 0.97, mode
