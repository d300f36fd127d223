"""Turning a user's own picture into a model input row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlplab.errors import ConfigError


def image_to_input(path: str | Path, shape: tuple[int, ...], pixel_max: float = 255.0) -> np.ndarray:
    """Load a picture, make it look like an MNIST digit, return a flat row in ``[0, pixel_max]``.

    Grayscale; a light background is inverted (MNIST digits are light on dark); the digit's
    bounding box is scaled to fit 20/28 of the frame keeping its aspect ratio and centred by
    its centre of mass, as MNIST's were.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such picture file")
    try:
        with Image.open(path) as im:
            im = im.convert("L")
            arr = np.asarray(im, dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ConfigError(f"{path}: not a readable picture ({exc})") from None
    if arr.size == 0:
        raise ConfigError(f"{path}: empty picture")
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    if border.mean() > 0.5:
        arr = 1.0 - arr
    h, w = shape[0], shape[1] if len(shape) > 1 else 1
    mask = arr > 0.2
    if mask.any():
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        arr = arr[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    box = max(1, int(round(max(h, w) * 20 / 28)))
    scale = box / max(arr.shape)
    new = (max(1, int(round(arr.shape[1] * scale))), max(1, int(round(arr.shape[0] * scale))))
    small = np.asarray(Image.fromarray((arr * 255).astype(np.uint8)).resize(new, Image.LANCZOS), dtype=np.float64)
    canvas = np.zeros((h, w))
    total = small.sum()
    if total > 0:
        ys, xs = np.indices(small.shape)
        cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    else:
        cy, cx = small.shape[0] / 2, small.shape[1] / 2
    top = int(round(h / 2 - cy))
    left = int(round(w / 2 - cx))
    top = min(max(top, 0), h - small.shape[0])
    left = min(max(left, 0), w - small.shape[1])
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small[: h, : w]
    return (canvas.reshape(-1) / 255.0 * pixel_max).astype(np.float64)
