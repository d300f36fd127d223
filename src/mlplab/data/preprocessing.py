"""Pixel scaling: ``unit`` [0, 1], ``symmetric`` [-1, 1] (the textbook's), ``standard``
(per-feature mean/std fitted on training data), ``none``.

``transform`` computes in float64 exactly as written (``((X / 255.) - .5) * 2`` for
``symmetric``), then casts to the requested dtype. For uint8 input the 256 possible values
go through a lookup table computed that way, so the result is bit-identical to the formula
and no float64 copy of the whole array is ever made.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from mlplab.errors import ConfigError, DataError

__all__ = ["Scaler", "SCALER_KINDS"]

SCALER_KINDS = ("unit", "symmetric", "standard", "none")
_BLOCK = 8192  # rows per block when computing in float64 (bounds the temporary's size)


class Scaler:
    """Scale pixel arrays ``X`` of shape ``(n, d)``.

    Parameters
    ----------
    kind : ``unit`` (x / pixel_max), ``symmetric`` (((x / pixel_max) - 0.5) * 2),
        ``standard`` ((x - mean) / max(std, std_floor * pixel_max), fitted per feature),
        ``none`` (a cast only).
    pixel_max : 255 for MNIST-family images, 16 for scikit-learn's digits.
    std_floor : for ``standard``, the smallest std used, as a fraction of ``pixel_max``
        (why: border pixels are almost always 0, and dividing by their tiny std would turn a
        single stray test pixel into a huge input).
    """

    def __init__(self, kind: str = "unit", pixel_max: float = 255, std_floor: float = 1e-2):
        if kind not in SCALER_KINDS:
            raise ConfigError(f"unknown scaler kind {kind!r}: valid kinds are {', '.join(SCALER_KINDS)}")
        if not np.isfinite(pixel_max) or pixel_max <= 0:
            raise ConfigError(f"scaler pixel_max must be a positive number, got {pixel_max!r}")
        if not np.isfinite(std_floor) or std_floor <= 0:
            raise ConfigError(f"scaler std_floor must be a positive number, got {std_floor!r}")
        self.kind = kind
        self.pixel_max = int(pixel_max) if float(pixel_max).is_integer() else float(pixel_max)
        self.std_floor = float(std_floor)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None  # the std actually divided by (floored)
        self.n_features_: int | None = None

    # ------------------------------------------------------------------ fitting
    @property
    def fitted(self) -> bool:
        return self.kind != "standard" or self.mean_ is not None

    def fit(self, X: np.ndarray) -> "Scaler":
        """Learn per-feature mean/std (``standard``); other kinds only record ``d``."""
        X = _as_2d(X)
        self.n_features_ = int(X.shape[1])
        if self.kind == "standard":
            if X.shape[0] == 0:
                raise DataError("scaler 'standard' cannot be fit on 0 samples")
            mean = np.zeros(X.shape[1], dtype=np.float64)
            sq = np.zeros(X.shape[1], dtype=np.float64)
            for start in range(0, X.shape[0], _BLOCK):
                blk = X[start:start + _BLOCK].astype(np.float64)
                mean += blk.sum(axis=0)
            mean /= X.shape[0]
            for start in range(0, X.shape[0], _BLOCK):
                blk = X[start:start + _BLOCK].astype(np.float64) - mean
                sq += np.einsum("ij,ij->j", blk, blk)
            std = np.sqrt(sq / X.shape[0])
            self.mean_ = mean
            self.scale_ = np.maximum(std, self.std_floor * self.pixel_max)
        return self

    def fit_transform(self, X: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        return self.fit(X).transform(X, dtype=dtype)

    # ------------------------------------------------------------------ transforming
    def _formula(self, v: np.ndarray) -> np.ndarray:
        """The scaling of float64 values ``v``, written exactly as documented."""
        if self.kind == "unit":
            return v / float(self.pixel_max)
        if self.kind == "symmetric":
            return ((v / float(self.pixel_max)) - .5) * 2
        if self.kind == "standard":
            return (v - self.mean_) / self.scale_
        return v

    def transform(self, X: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """Scaled copy of ``X`` (n, d) as a C-contiguous ``dtype`` array: a new array for every
        kind, ``none`` included, never ``X`` itself."""
        X = _as_2d(X)
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise ConfigError(f"scaler output dtype must be a float type, got {dtype}")
        if not self.fitted:
            raise ConfigError("scaler 'standard' must be fit on training data before transform")
        if self.n_features_ is not None and X.shape[1] != self.n_features_:
            raise DataError(f"scaler was fit on {self.n_features_} features, got {X.shape[1]}")
        if self.kind == "none":
            return np.array(X, dtype=dtype, order="C")  # (a copy even where X is already that array)
        if X.dtype == np.uint8 and self.kind in ("unit", "symmetric"):
            table = self._formula(np.arange(256, dtype=np.float64)).astype(dtype)
            return np.ascontiguousarray(table[X])  # fancy indexing: ~20x faster than np.take(out=)
        out = np.empty(X.shape, dtype=dtype)
        for start in range(0, X.shape[0], _BLOCK):
            out[start:start + _BLOCK] = self._formula(X[start:start + _BLOCK].astype(np.float64))
        return out

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Back to pixel units, a new float64 array, e.g. to plot a scaled image."""
        Z = np.asarray(Z, dtype=np.float64)
        if self.kind == "unit":
            return Z * float(self.pixel_max)
        if self.kind == "symmetric":
            return (Z / 2 + .5) * float(self.pixel_max)
        if self.kind == "standard":
            if not self.fitted:
                raise ConfigError("scaler 'standard' must be fit before inverse_transform")
            return Z * self.scale_ + self.mean_
        return Z.copy()  # (np.asarray above returns a float64 Z itself)

    # ------------------------------------------------------------------ saving
    def to_dict(self, include_arrays: bool = True) -> dict[str, Any]:
        """A JSON-able description. With ``include_arrays=False`` the fitted mean/std are left
        out (flagged ``"arrays": "separate"``) to be saved from :meth:`arrays` in an npz."""
        d: dict[str, Any] = {
            "kind": self.kind,
            "pixel_max": self.pixel_max,
            "std_floor": self.std_floor,
            "n_features": self.n_features_,
        }
        if self.kind == "standard" and self.mean_ is not None:
            if include_arrays:
                d["mean"] = [float(v) for v in self.mean_]
                d["std"] = [float(v) for v in self.scale_]
            else:
                d["arrays"] = "separate"
        return d

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted arrays (``scaler_mean``, ``scaler_std``), empty unless fitted standard."""
        if self.kind == "standard" and self.mean_ is not None:
            return {"scaler_mean": self.mean_.copy(), "scaler_std": self.scale_.copy()}
        return {}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> "Scaler":
        """Rebuild a scaler from :meth:`to_dict` (and :meth:`arrays` when saved separately)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"scaler description must be a mapping, got {type(d).__name__}")
        known = {"kind", "pixel_max", "std_floor", "n_features", "mean", "std", "arrays"}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(f"scaler description has unknown keys: {', '.join(extra)}")
        if "kind" not in d:
            raise ConfigError("scaler description lacks 'kind'")
        s = cls(d["kind"], d.get("pixel_max", 255), d.get("std_floor", 1e-2))
        nf = d.get("n_features")
        if nf is not None and (not isinstance(nf, (int, np.integer)) or isinstance(nf, bool) or nf < 1):
            raise ConfigError(f"scaler n_features must be a positive integer, got {nf!r}")
        s.n_features_ = None if nf is None else int(nf)
        if s.kind == "standard":
            if "mean" in d or "std" in d:
                mean, scale = d.get("mean"), d.get("std")
            elif d.get("arrays") == "separate":
                if arrays is None or "scaler_mean" not in arrays or "scaler_std" not in arrays:
                    raise ConfigError("scaler 'standard' saved its arrays separately: scaler_mean/scaler_std missing")
                mean, scale = arrays["scaler_mean"], arrays["scaler_std"]
            else:
                return s  # never fitted
            mean = np.array(mean, dtype=np.float64)  # (copies: not the caller's arrays)
            scale = np.array(scale, dtype=np.float64)
            if mean.ndim != 1 or mean.shape != scale.shape:
                raise ConfigError(f"scaler mean/scale shapes differ or are not 1-D: {mean.shape}, {scale.shape}")
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
                raise ConfigError("scaler mean/scale must be finite and scale positive")
            if s.n_features_ is not None and s.n_features_ != mean.shape[0]:
                raise ConfigError(f"scaler n_features={s.n_features_} but mean has {mean.shape[0]} values")
            s.mean_, s.scale_, s.n_features_ = mean, scale, int(mean.shape[0])
        return s

    def __repr__(self) -> str:
        return f"Scaler({self.kind!r}, pixel_max={self.pixel_max})"


def _as_2d(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise DataError(f"scaler expects a 2-D array (n_samples, n_features), got shape {X.shape}")
    if X.dtype.kind not in "uif":
        raise DataError(f"scaler expects numeric pixels, got dtype {X.dtype}")
    return X
