"""Reading people's digit pictures: bit depths, orientation, transparency, size limits."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnn_jax import digits
from experiments import predict


def _seven() -> np.ndarray:
  """A 7 as white ink on black, 60×40 (asymmetric, so a rotation shows)."""
  ink = np.zeros((60, 40), np.uint8)
  ink[8:14, 6:34] = 255  # The bar.
  for row in range(14, 54):  # The stem, leaning left as it goes down.
    col = 30 - (row - 14) // 3
    ink[row, col:col + 6] = 255
  return ink


def _expected() -> np.ndarray:
  return digits.to_mnist(_seven().astype(np.float32) / 255.0)


def test_a_16_bit_png_reads_like_the_8_bit_one(tmp_path):
  path = tmp_path / 'seven16.png'
  Image.fromarray((255 - _seven()).astype(np.uint16) * 257).save(path)  # Dark on white.
  gray = digits.load_grayscale(path)
  np.testing.assert_allclose(gray, (255 - _seven()) / 255.0, atol=1e-6)
  np.testing.assert_array_equal(digits.to_mnist(gray), _expected())


def test_exif_orientation_is_applied(tmp_path):
  path = tmp_path / 'photo.jpg'
  exif = Image.Exif()
  exif[0x0112] = 6  # "Rotate 90° clockwise to display": the pixels are stored turned left.
  Image.fromarray(_seven()).rotate(90, expand=True).save(path, exif=exif, quality=100)
  gray = digits.load_grayscale(path)
  assert gray.shape == (60, 40)
  assert np.abs(gray - _seven() / 255.0).mean() < 0.02


@pytest.mark.parametrize('ink_shade', [0, 255])
def test_ink_on_a_transparent_background_is_found_whatever_its_colour(tmp_path, ink_shade):
  rgba = np.zeros((60, 40, 4), np.uint8)
  rgba[..., :3] = ink_shade
  rgba[..., 3] = _seven()  # Opaque where the ink is, transparent elsewhere.
  path = tmp_path / 'seven.png'
  Image.fromarray(rgba, 'RGBA').save(path)
  result = digits.to_mnist(digits.load_grayscale(path))
  np.testing.assert_array_equal(result, _expected())


def test_a_grey_drawing_on_an_opaque_background_keeps_its_background(tmp_path):
  rgba = np.full((60, 40, 4), 255, np.uint8)  # Opaque white paper, dark ink.
  rgba[..., :3] = 255 - _seven()[..., None]
  path = tmp_path / 'seven.png'
  Image.fromarray(rgba, 'RGBA').save(path)
  np.testing.assert_array_equal(digits.to_mnist(digits.load_grayscale(path)), _expected())


def _png_header_only(width: int, height: int) -> bytes:
  """A PNG that claims width×height: its pixels would decode to gigabytes."""
  def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data)))
  header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
          + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def test_a_picture_over_the_pixel_cap_is_refused_before_decoding(tmp_path):
  path = tmp_path / 'bomb.png'
  path.write_bytes(_png_header_only(13000, 13000))
  with pytest.raises(digits.ImageError,
                     match=r'bomb.png: 13000×13000 is 169 megapixels; at most 50'):
    digits.load_grayscale(path)


def test_preprocessed_file_names_never_collide():
  paths = ['a/1.png', 'b/1.jpg', 'c.png', 'a/1.jpg', 'x/2.png']
  names = predict.preprocessed_file_names(paths)
  assert len(set(names)) == len(paths)
  assert names[2] == 'c.png' and names[4] == '2.png'  # Unique stems keep their name.
  assert names[0].endswith('1.png') and names[0].startswith('a')
  assert predict.preprocessed_file_names(['1.png', '1.png'])[0] != (
      predict.preprocessed_file_names(['1.png', '1.png'])[1])


def test_a_picture_over_pillows_own_limit_gets_the_same_kind_of_error(tmp_path):
  path = tmp_path / 'bigger.png'
  path.write_bytes(_png_header_only(20000, 20000))
  with pytest.raises(digits.ImageError, match=r'bigger.png: .*megapixels'):
    digits.load_grayscale(path)
