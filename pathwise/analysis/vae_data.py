"""Binarized image data for the VAE experiment (``pathwise lab vae``).

* ``digits`` (default): scikit-learn's bundled 8×8 handwritten digits (1797 images, UCI
  "optdigits", pixel counts 0–16), binarized at half scale (count ≥ 8 → 1), split once by a
  fixed permutation into 1437 training and 360 test images. Ships with scikit-learn: no
  download, the same bytes everywhere.
* ``mnist``: torchvision's MNIST (60 000 / 10 000 images, 28×28), binarized at intensity
  ≥ 0.5 (a fixed threshold, as for the digits: every run sees the same data). torchvision is
  not a dependency of pathwise; it is imported only here.

Both come back as float32 tensors of 0s and 1s, one flattened image per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pathwise.errors import DependencyError

DATASETS = ("digits", "mnist")
DIGITS_THRESHOLD = 8  # of 16: a pixel is on when at least half of its 4×4 block was inked
DIGITS_TEST = 360  # 20 % of 1797
SPLIT_SEED = 0  # the fixed permutation; independent of a run's seed
MNIST_THRESHOLD = 0.5

VAE_EXTRA = ('pip install -e ".[vae]" (a checkout) or pip install "pathwise-rl[vae]"')


@dataclass(frozen=True)
class Data:
    name: str
    train: torch.Tensor  # (N_train, D) of {0., 1.}
    test: torch.Tensor  # (N_test, D)
    shape: tuple[int, int]  # the image's (height, width), for figures

    @property
    def dim(self) -> int:
        return self.train.shape[1]


def load(name: str, root: str | Path | None = None) -> Data:
    """The dataset ``name`` (one of ``DATASETS``); ``root`` is where MNIST is kept."""
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_mnist(root)
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")


def load_digits() -> Data:
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DependencyError(f"the digits data set comes with scikit-learn, which is not "
                              f"installed: {VAE_EXTRA}") from None
    images = sklearn_digits().data  # (1797, 64), integer counts 0..16 as float64
    binary = torch.from_numpy((images >= DIGITS_THRESHOLD).astype(np.float32))
    order = torch.from_numpy(np.random.default_rng(SPLIT_SEED).permutation(len(binary)))
    test, train = order[:DIGITS_TEST], order[DIGITS_TEST:]
    return Data("digits", binary[train], binary[test], (8, 8))


def load_mnist(root: str | Path | None) -> Data:
    try:
        from torchvision import datasets
    except ImportError:
        raise DependencyError("--data mnist reads MNIST through torchvision, which is not "
                              "installed: pip install torchvision (the build matching your "
                              "torch), or use --data digits") from None
    root = Path(root) if root is not None else Path("data")
    try:
        # download=True fetches the files once into root, then reads them from there.
        parts = [datasets.MNIST(str(root), train=train, download=True) for train in (True, False)]
    except (OSError, RuntimeError) as err:
        raise DependencyError(f"cannot load MNIST into {root}: {err}") from None
    train, test = ((p.data.reshape(len(p.data), -1).float() / 255.0 >= MNIST_THRESHOLD).float()
                   for p in parts)
    return Data("mnist", train, test, (28, 28))
