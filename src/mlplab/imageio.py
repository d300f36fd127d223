"""Turning a user's own picture into a model input row.

The picture is made to look like the images the model was trained on:

* it is read as the viewer shows it (EXIF orientation applied), at its real bit depth
  (8-bit, 16-bit, 32-bit integer or floating point, each scaled by its own range); a picture
  of more than :data:`WORK_PIXELS` pixels is first area-averaged down to that many (a JPEG
  decoded at a reduced scale to begin with), so memory stays bounded near Pillow's size limit;
* transparent parts are treated as background (composited onto the colour opposite to the
  strokes), then the picture becomes greyscale, stretched to its full contrast and made light
  on dark (every bundled dataset is light on dark; ``ink="dark"`` returns dark on light, for a
  model trained on such images: :func:`dataset_ink` measures a dataset's polarity);
* an uneven background (a page photographed under uneven light: white fading to grey) is
  estimated and removed before the ink is told from the paper: a smooth surface (a quadratic
  in x and y) is fitted to the background alone, iteratively leaving out the pixels above it
  (the ink), and divided out of a light page (light multiplies the page and its ink) or
  subtracted from a dark one. A background that varies by less than :data:`SHADING`, or not
  clearly more than it scatters, is left as it is (flat pictures are read as before). A picture
  whose "ink" then covers much of its edge is ambiguous (a shadow's sharp edge is no smooth
  surface; or the digit is cut off), and ``warn`` says so;
* it is framed the way the dataset was: MNIST (28x28) scales the digit's bounding box to 20/28
  of the frame and centres it by its centre of mass; scikit-learn's 8x8 digits (32x32 bitmaps
  whose digit fills the frame, counted in 4x4 blocks) and Fashion-MNIST (items resized so the
  longest edge fills the frame) scale the bounding box to fill the frame keeping its aspect
  ratio and centre it;
* the framed digit's brightest pixel is scaled to the full range, as the training digits' are
  (MNIST: 90% of the training digits peak at 255, the rest at 254; the 8x8 digits: 99% at 16):
  a thin pen stroke, averaged with the paper around it when the picture is scaled down, would
  otherwise be far fainter than any training digit (a 3-pixel line on a 400-pixel page: a third
  of the range). Fashion-MNIST items keep
  their framed brightness (an item's brightest pixel is its own shade, not the full range);
* values are scaled to ``[0, pixel_max]``.

A picture with no visible digit (blank, one colour, an uneven background only, fully
transparent) raises :class:`~mlplab.errors.ConfigError` naming the file instead of being
classified.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlplab.errors import ConfigError

#: Framing of each known dataset; other datasets: ``mnist`` for 28x28 images, else ``fill``.
DATASET_FRAMING = {"mnist": "mnist", "fashion-mnist": "fill", "digits": "fill"}
FRAMINGS = ("mnist", "fill")

#: Pictures whose darkest and lightest pixels differ by less than this (fraction of the full
#: range, about 10/255) hold no digit: a blank page, JPEG noise on one colour.
MIN_CONTRAST = 0.04
_FILL_OVERSAMPLE = 4
_INK_THRESHOLD = 0.2  # after stretching to [0, 1], light-on-dark: what counts as part of the digit
#: A fitted background varying by more than this (fraction of the picture's contrast, about
#: 13/255) is removed; a flatter one is left as it is (JPEG noise, a slightly grey scan).
SHADING = 0.05
#: ... and by more than this many times the scatter of the background around the fitted surface:
#: faint strokes (grey levels of a small digit) that pass for background are no shading. Measured:
#: shaded pages 50 to 1,000 times, flat pictures of the 8x8 digits at most 6.
_SHADING_OVER_NOISE = 10.0
_BACKGROUND_GRID = 48  # the background is fitted to block means on at most this many cells a side
#: "Ink" on more than this fraction of the picture's edge (its outer ring of pixels), background
#: removed: the paper was not told from the ink (a shadow's sharp edge is no smooth surface), or
#: the digit is cut off; warned about. Measured: at most 39% for digits cropped tight to their
#: bounding box, 45% for a page half in a sharp shadow.
_AMBIGUOUS_EDGE = 0.4
#: Datasets whose framed images keep their own brightest value (not stretched to the full range).
_KEEP_PEAK = ("fashion-mnist",)
#: Pictures with more pixels are area-averaged down to this many before any float copy is made
#: (a float64 copy of a picture near Pillow's limit of ~89 million pixels would take ~0.7 GB per
#: array); a digit filling a tenth of such a picture still spans ~140 pixels, far more than the
#: 20-pixel (MNIST) or 4 x side (filled frames) box it is scaled to.
WORK_PIXELS = 2_000_000
INKS = ("light", "dark")
_INK_SAMPLE_ROWS = 5000  # images looked at by dataset_ink (evenly spaced)


def dataset_ink(images: np.ndarray, shape: tuple[int, ...]) -> str:
    """The ink polarity of a dataset's images: ``"light"`` (light strokes on a dark background,
    like MNIST, Fashion-MNIST and the 8x8 digits) or ``"dark"`` (dark on light).

    ``images`` are flat raw rows (n, prod(shape)). An image's background is its outer ring of
    pixels: the ink is dark when, in most images (the median), the ring is lighter than the
    centre half of the frame. Images that are not 2-D, too small to have a centre, or show no
    difference count as ``"light"``, the polarity every bundled dataset has.
    """
    images = np.asarray(images)
    if len(shape) != 2 or min(shape) < 4 or images.ndim != 2 or images.shape[0] == 0:
        return "light"
    h, w = shape
    step = max(1, images.shape[0] // _INK_SAMPLE_ROWS)
    imgs = images[::step].reshape(-1, h, w)
    ring = np.zeros((h, w), bool)
    ring[[0, -1], :] = ring[:, [0, -1]] = True
    centre = np.zeros((h, w), bool)
    centre[h // 4:h - h // 4, w // 4:w - w // 4] = True
    border_minus_centre = imgs[:, ring].mean(axis=1) - imgs[:, centre].mean(axis=1)
    return "dark" if float(np.median(border_minus_centre)) > 0 else "light"


def framing_for(shape: tuple[int, ...], dataset: str | None = None) -> str:
    """The framing convention (``"mnist"`` or ``"fill"``) of a model's input images."""
    key = str(dataset or "").strip().lower()
    if key in DATASET_FRAMING:
        return DATASET_FRAMING[key]
    h, w = shape[0], shape[1] if len(shape) > 1 else 1
    return "mnist" if (h, w) == (28, 28) else "fill"


def _has_alpha(im) -> bool:
    return "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info


def _upright_within_work_size(im):
    """The opened picture as viewers show it (EXIF orientation applied), area-averaged down to at
    most :data:`WORK_PIXELS` pixels when it is larger; a picture within that size is as read.

    A large JPEG is decoded at 1/2, 1/4 or 1/8 scale (still at least the working size). The
    bit depth is kept (16-bit, 32-bit and float pictures are averaged as they are); transparent
    pictures are averaged premultiplied by their alpha, as compositing them needs, except
    palette ones: their bands are averaged apart, so fully transparent parts keep the colour of
    their palette entry (see :func:`_scaled_gray`). Other modes are made greyscale first.
    """
    from PIL import Image, ImageOps

    def work_size() -> tuple[int, int]:
        scale = math.sqrt(WORK_PIXELS / (im.width * im.height))
        return max(1, int(im.width * scale)), max(1, int(im.height * scale))

    if im.width * im.height > WORK_PIXELS:
        im.draft(None, work_size())  # JPEG only: decoded at the smallest scale at least that large
    ImageOps.exif_transpose(im, in_place=True)
    if im.width * im.height <= WORK_PIXELS:
        return im
    size = work_size()
    if _has_alpha(im):
        if im.mode == "P":  # bands apart, not premultiplied: transparent parts keep their colour
            return Image.merge("RGBA", [band.resize(size, Image.BOX) for band in im.convert("RGBA").split()])
        if im.mode not in ("LA", "RGBA"):
            im = im.convert("RGBA")
    elif im.mode not in ("L", "RGB", "I", "F") and not im.mode.startswith("I;16"):
        im = im.convert("L")  # 1-bit, palette, CMYK, ...: as _scaled_gray makes them
    return im.resize(size, Image.BOX)  # area averaging (LA and RGBA premultiplied by alpha)


def _scaled_gray(im, palette: bool = False) -> np.ndarray:
    """The picture as float greyscale in ``[0, 1]`` (alpha composited), by the mode's own range.

    ``palette``: the picture was read as a palette (GIF-like) one."""
    if _has_alpha(im):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255.0
        lum = rgba[..., 0] * 0.299 + rgba[..., 1] * 0.587 + rgba[..., 2] * 0.114
        alpha = rgba[..., 3]
        if alpha.sum() <= 0:
            return np.zeros(lum.shape)  # fully transparent: blank
        opaque = alpha > 0.5
        if palette and (alpha == 0).any():  # a palette picture (GIF-like) was drawn on the
            background = float(np.median(lum[alpha == 0]))  # colour its transparent entry holds,
            out = lum * alpha + background * (1.0 - alpha)
            if float(out.max() - out.min()) >= MIN_CONTRAST:  # unless that is the ink's colour too
                return out
        if opaque.mean() >= 0.5:  # an opaque card (with transparent corners): its own colour is the background
            background = float(np.median(lum[opaque]))
        else:  # strokes on a transparent sheet: the background is the colour opposite to the ink,
            # the extreme of the opaque colours farther from mid-grey (a light halo around a dark
            # digit is not the ink)
            dark, light = np.percentile(lum[opaque] if opaque.any() else lum[alpha > 0], [5, 95])
            background = 1.0 if 0.5 - dark >= light - 0.5 else 0.0
        return lum * alpha + background * (1.0 - alpha)
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im, dtype=np.float64) / 65535.0
    if mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("the picture holds non-finite pixel values")
        lo, hi = float(arr.min()), float(arr.max())
        # floats: [0, 1] or [0, 255] as is, else their own range; 32-bit integers: 8 or 16 bits
        tops = (1.0, 255.0) if mode == "F" else (255.0, 65535.0)
        for top in tops:
            if lo >= 0.0 and hi <= top:
                return arr / top
        return (arr - lo) / (hi - lo) if hi > lo else np.zeros(arr.shape)
    if mode != "L":
        im = im.convert("L")
    return np.asarray(im, dtype=np.float64) / 255.0


def _resize(arr: np.ndarray, size: tuple[int, int], resample) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(np.asarray(arr, dtype=np.float32), "F")
    return np.clip(np.asarray(im.resize(size, resample), dtype=np.float64), 0.0, 1.0)


def _frame_mnist(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """MNIST: bounding box scaled to 20/28 of the frame, centred by its centre of mass."""
    from PIL import Image

    box = max(1, int(round(max(h, w) * 20 / 28)))
    scale = box / max(arr.shape)
    new = (max(1, int(round(arr.shape[1] * scale))), max(1, int(round(arr.shape[0] * scale))))
    small = np.asarray(Image.fromarray((arr * 255).astype(np.uint8)).resize(new, Image.LANCZOS),
                       dtype=np.float64) / 255.0
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
    return canvas


def _frame_fill(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bounding box scaled to fill the frame keeping its aspect ratio, centred (digits, Fashion).

    Framed on a grid ``_FILL_OVERSAMPLE`` times finer, then averaged in blocks, as the 8x8
    digits were made (a 32x32 bitmap filled by the digit, on-pixels counted in 4x4 blocks):
    the digit is centred to a fraction of a pixel.
    """
    from PIL import Image

    k = _FILL_OVERSAMPLE
    H, W = h * k, w * k
    scale = min(H / arr.shape[0], W / arr.shape[1])
    nh = min(H, max(1, int(round(arr.shape[0] * scale))))
    nw = min(W, max(1, int(round(arr.shape[1] * scale))))
    small = _resize(arr, (nw, nh), Image.BOX)  # area averaging (pixel copies when enlarging)
    canvas = np.zeros((H, W))
    top, left = (H - nh) // 2, (W - nw) // 2
    canvas[top:top + nh, left:left + nw] = small
    return canvas.reshape(h, k, w, k).mean(axis=(1, 3))


class PictureWarning(UserWarning):
    """A picture was converted but may be read wrongly (e.g. its background could not be told
    from its ink)."""


def _poly_terms(ys: np.ndarray, xs: np.ndarray) -> list[np.ndarray]:
    """The terms of a quadratic surface over rows at ``ys`` and columns at ``xs`` (both in
    [-1, 1]), broadcast to ``(len(ys), len(xs))`` only when used (no full-size design matrix)."""
    Y, X = ys[:, None], xs[None, :]
    return [np.ones((1, 1)), X, Y, X * X, X * Y, Y * Y]


def _cell_centres(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n * 2.0 - 1.0


def _background(arr: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """A smooth (quadratic) surface under the light-on-dark picture ``arr``: its background.

    Fitted by least squares to block means on a coarse grid, starting from the darker half of
    the cells, then again and again to the cells at most a noise margin above the surface, so
    the strokes (above it) drop out whatever their share. Returns the fitted coefficients, the
    surface's lowest and highest value over the cells it was fitted to, and their scatter
    around it (a robust standard deviation)."""
    from PIL import Image

    h, w = arr.shape
    gh, gw = min(_BACKGROUND_GRID, h), min(_BACKGROUND_GRID, w)
    cells = _resize(arr, (gw, gh), Image.BOX).ravel()  # block means
    terms = _poly_terms(_cell_centres(gh), _cell_centres(gw))
    A = np.stack([np.broadcast_to(t, (gh, gw)).ravel() for t in terms], axis=1)
    keep = cells <= np.median(cells)
    coef = np.zeros(A.shape[1])
    for _ in range(20):
        coef = np.linalg.lstsq(A[keep], cells[keep], rcond=None)[0]
        resid = cells - A @ coef
        noise = 1.4826 * float(np.median(np.abs(resid[keep])))
        new = resid <= max(0.02, 3.0 * noise)
        if np.array_equal(new, keep) or not new.any():
            break
        keep = new
    fit = (A @ coef)[keep]  # where the background was seen, not extrapolated under the strokes
    return coef, float(fit.min()), float(fit.max()), noise


def _remove_background(arr: np.ndarray, light_page: bool) -> tuple[np.ndarray, float | None]:
    """``arr`` (light on dark, stretched to [0, 1]) with an uneven background removed, stretched
    again, and the contrast left above the background (a fraction of ``arr``'s); ``(arr, None)``
    when its background varies by less than :data:`SHADING` or than its scatter allows to tell,
    and for pictures too small to be photographs (less than 8 pixels a side).

    A light page was made light on dark by inversion: its paper's brightness is ``1 - b``, and
    the ink, lit by the same light, is divided by it; a dark page's background is subtracted."""
    if min(arr.shape) < 8:
        return arr, None
    coef, low, high, noise = _background(arr)
    if high - low < max(SHADING, _SHADING_OVER_NOISE * noise):
        return arr, None
    h, w = arr.shape
    b = sum(c * t for c, t in zip(coef, _poly_terms(_cell_centres(h), _cell_centres(w))))
    np.clip(b, low, high, out=b)  # no more uneven under the strokes than where it was seen
    out = arr - b
    if light_page:
        out /= np.maximum(1.0 - b, MIN_CONTRAST)
    np.clip(out, 0.0, 1.0, out=out)
    peak = float(out.max())
    return (out / peak if peak > 0 else out), peak


def _edge_ink(mask: np.ndarray) -> float:
    """The fraction of the picture's outer ring of pixels that counts as ink."""
    if min(mask.shape) < 3:
        return 0.0
    ring = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    return float(ring.mean())


def image_to_input(path: str | Path, shape: tuple[int, ...], pixel_max: float = 255.0, *,
                   dataset: str | None = None, framing: str | None = None, ink: str = "light",
                   warn: Callable[[str], None] | None = None) -> np.ndarray:
    """Load a picture, make it look like the model's training images, return a flat row.

    Parameters
    ----------
    path : the picture (anything Pillow reads: PNG, JPEG, TIFF, ...).
    shape : the model's image shape, e.g. ``(28, 28)`` or ``(8, 8)``.
    pixel_max : the largest pixel value of the model's data (255, or 16 for digits).
    dataset : the model's dataset name (``preprocessing["dataset"]``), to pick its framing.
    framing : ``"mnist"`` or ``"fill"``; overrides ``dataset``. By default from
        :func:`framing_for`.
    ink : ``"light"`` (light digit on a dark background, every bundled dataset) or ``"dark"``
        (dark on light, e.g. an inverted IDX dataset): the polarity of the returned row.
    warn : called with a one-line message (naming the file) when the picture is converted but
        may be read wrongly; default: :func:`warnings.warn` with :class:`PictureWarning`.

    Returns a float64 row of ``prod(shape[:2])`` values in ``[0, pixel_max]``. Raises
    :class:`ConfigError` naming the file when it is missing, unreadable or blank.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a picture file")
    if not path.is_file():
        raise ConfigError(f"{path}: no such picture file")
    framing = framing or framing_for(shape, dataset)
    if ink not in INKS:
        raise ConfigError(f"ink {ink!r}: valid values are {', '.join(INKS)}")
    if framing not in FRAMINGS:
        raise ConfigError(f"framing {framing!r}: valid values are {', '.join(FRAMINGS)}")
    try:
        with warnings.catch_warnings():
            # Pillow warns (two lines, naming its own file) above ~89 megapixels; such a picture is
            # read within bounded memory (_upright_within_work_size), and above twice that Pillow
            # refuses it: DecompressionBombError, the one-line error below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                palette = im.mode == "P"
                arr = _scaled_gray(_upright_within_work_size(im), palette)  # as viewers show it (phone photos)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError) as exc:
        raise ConfigError(f"{path}: not a readable picture ({exc})") from None
    if arr.size == 0:
        raise ConfigError(f"{path}: empty picture")
    arr = np.clip(arr, 0.0, 1.0)
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo < MIN_CONTRAST:
        raise ConfigError(f"{path}: no digit found: the picture is blank/uniform")
    arr = (arr - lo) / (hi - lo)  # full contrast, so faint pencil strokes count as ink too
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    light_page = bool(border.mean() > 0.5)
    if light_page:
        arr = 1.0 - arr  # light background: every bundled dataset is light on dark
    arr, left = _remove_background(arr, light_page)  # shading would otherwise count as ink
    if left is not None and left * (hi - lo) < MIN_CONTRAST:
        raise ConfigError(f"{path}: no digit found: the picture is blank/uniform (an uneven background only)")
    h, w = shape[0], shape[1] if len(shape) > 1 else 1
    mask = arr > _INK_THRESHOLD
    if not mask.any():
        raise ConfigError(f"{path}: no digit found: the picture is blank/uniform")
    edge = _edge_ink(mask)
    if edge > _AMBIGUOUS_EDGE:  # paper read as ink (a shadow's sharp edge), or a digit cut off
        if warn is None:
            def warn(msg: str) -> None:
                warnings.warn(msg, PictureWarning, stacklevel=3)
        warn(f"{path}: ambiguous picture: what reads as ink covers {edge:.0%} of its edge (a shadow or an "
             "uneven background, or a digit cut off by the edge); the prediction may be wrong")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    arr = arr[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    canvas = _frame_mnist(arr, h, w) if framing == "mnist" else _frame_fill(arr, h, w)
    peak = float(canvas.max())
    if 0 < peak < 1 and str(dataset or "").strip().lower() not in _KEEP_PEAK:
        canvas /= peak  # the brightest stroke at the full range, as in the training digits
    if ink == "dark":
        canvas = 1.0 - canvas
    return (canvas.reshape(-1) * pixel_max).astype(np.float64)
