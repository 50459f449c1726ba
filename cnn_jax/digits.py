"""Turning anyone's picture of a digit into an MNIST-like 28×28 image.

MNIST's recipe (LeCun et al.): white ink on black, the digit scaled (keeping its aspect
ratio) to fit a 20×20 box, then placed in 28×28 so that its centre of mass sits at the
centre. A photo or scan differs in every respect: dark ink on light paper, off-centre,
any size, any format. Pure NumPy + Pillow, so it is testable without a model.
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MNIST_SIZE, DIGIT_BOX = 28, 20


class ImageError(ValueError):
  """A file that cannot be read as an image, or holds no digit."""


# Larger pictures are refused before decoding: a small PNG can decode to gigabytes. A
# 48-megapixel phone photo still fits.
MAX_PIXELS = 50_000_000


def load_grayscale(path: str | pathlib.Path) -> np.ndarray:
  """The image as float32 in [0, 1], upright; ImageError if unreadable or too large.

  Handles 16-bit and float images (scaled by their own range, not clipped to 8 bits),
  EXIF orientation (phone photos), and transparency: the transparent part becomes a
  background that contrasts with the opaque ink, so white ink on transparent works as
  well as dark ink.
  """
  try:
    with warnings.catch_warnings():
      # Pillow warns from 89 megapixels; the cap below decides instead.
      warnings.simplefilter('ignore', Image.DecompressionBombWarning)
      image = Image.open(path)
    with image:
      width, height = image.size
      if width * height > MAX_PIXELS:
        raise ImageError(f'{path}: {width}×{height} is {width * height / 1e6:.0f} '
                         f'megapixels; at most {MAX_PIXELS / 1e6:.0f} are read')
      image.load()
      image = ImageOps.exif_transpose(image)
      gray = _gray_array(image)
  except ImageError:
    raise
  except Image.DecompressionBombError as e:
    raise ImageError(f'{path}: over {MAX_PIXELS / 1e6:.0f} megapixels ({e})') from None
  except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
    raise ImageError(f'{path}: cannot read it as an image ({e})') from None
  if gray.ndim != 2 or min(gray.shape) < 1:
    raise ImageError(f'{path}: not a 2-D image')
  return gray


def _gray_array(image: Image.Image) -> np.ndarray:
  """Grayscale float32 in [0, 1] from any Pillow mode."""
  if image.mode.startswith('I') or image.mode == 'F':
    values = np.asarray(image, np.float64)
    # 16-bit PNGs open as I or I;16 and span 0..65535; float and 32-bit images have no
    # fixed range, so their own range is used.
    if image.mode != 'F' and values.min() >= 0 and values.max() <= 65535:
      low, high = 0.0, 65535.0
    else:
      low, high = values.min(), values.max()
    return ((values - low) / max(high - low, 1e-12)).astype(np.float32)
  if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
    rgba = image.convert('RGBA')
    luminance = np.asarray(rgba.convert('L'), np.float32) / 255.0
    alpha = np.asarray(rgba.getchannel('A'), np.float32) / 255.0
    opaque = alpha > 0.5
    # Ink is what is drawn (opaque); the transparent rest takes the opposite shade.
    light_ink = opaque.any() and not opaque.all() and luminance[opaque].mean() > 0.5
    background = 0.0 if light_ink else 1.0
    return (alpha * luminance + (1 - alpha) * background).astype(np.float32)
  return np.asarray(image.convert('L'), np.float32) / 255.0


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
