"""The article's formulas as pure functions: output sizes, receptive fields, parameters,
multiply-adds; and the layer table's row type and text.

Nothing here imports JAX: `models.layer_table` builds the rows from the Flax module
itself, and the tests check them against these formulas.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from cnn_jax.errors import GeometryError


def output_size(input_size: int, kernel: int, stride: int = 1, padding: int = 0,
                *, layer: str = 'layer', floor: bool = False,
                kernel_name: str = 'kernel') -> int:
  """The article's `(in + 2·pad − kernel) / stride + 1`.

  With `floor=False` a non-integer result is an error: the kernel would not tile the
  input. Pooling uses `floor=True` (PyTorch's `ceil_mode=False`, Flax's VALID), which is
  what the article's padding-0 variant needs (11 → 5 in the second pool).
  """
  for name, value, low in (('input size', input_size, 1), (kernel_name, kernel, 1),
                           ('stride', stride, 1), ('padding', padding, 0)):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
      raise GeometryError(layer, f'{name} must be an integer >= {low}, got {value!r}')
  span = input_size + 2 * padding - kernel
  if span < 0:
    raise GeometryError(
        layer, f'{kernel_name} {kernel} is larger than its padded input '
        f'{input_size} + 2·{padding} = {input_size + 2 * padding}')
  if span % stride and not floor:
    raise GeometryError(
        layer, f'(in + 2·pad − kernel) / stride + 1 = ({input_size} + 2·{padding} − '
        f'{kernel}) / {stride} + 1 = {span / stride + 1:g} is not an integer')
  return span // stride + 1


def conv_output_size(input_size: int, kernel: int, stride: int = 1, padding: int = 0,
                     *, layer: str = 'conv') -> int:
  """Output size of a convolution; must come out an integer."""
  return output_size(input_size, kernel, stride, padding, layer=layer)


def pool_output_size(input_size: int, window: int, stride: int, padding: int = 0,
                     *, layer: str = 'pool') -> int:
  """Output size of a pooling layer; rounds down like PyTorch and Flax."""
  return output_size(input_size, window, stride, padding, layer=layer, floor=True,
                     kernel_name='window')


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
  """What one unit of a layer sees in the input, along one spatial axis.

  size: how many input pixels one unit sees; jump: input pixels between neighbouring
  units; start: input coordinate (pixel index) of the centre of the first unit's field.
  """
  size: int = 1
  jump: int = 1
  start: float = 0.0

  def then(self, kernel: int, stride: int = 1, padding: int = 0) -> ReceptiveField:
    """The field after one more conv/pool layer: r += (k−1)·j, j *= s."""
    return ReceptiveField(
        size=self.size + (kernel - 1) * self.jump,
        jump=self.jump * stride,
        start=self.start + ((kernel - 1) / 2 - padding) * self.jump)

  def region(self, index: int, input_size: int) -> tuple[int, int]:
    """Input pixels [lo, hi) seen by unit `index`, clipped to the image (padding)."""
    centre = self.start + index * self.jump
    lo = centre - (self.size - 1) / 2
    return max(0, int(round(lo))), min(input_size, int(round(lo)) + self.size)


def conv_params(in_channels: int, out_channels: int, kernel: int,
                bias: bool = True) -> int:
  """k·k·C_in·C_out weights (+ C_out biases)."""
  return kernel * kernel * in_channels * out_channels + (out_channels if bias else 0)


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
  """in·out weights (+ out biases)."""
  return in_features * out_features + (out_features if bias else 0)


def batch_norm_params(channels: int) -> int:
  """A scale and a shift per channel (the running mean and variance are state)."""
  return 2 * channels


def conv_multiply_adds(output_shape: Sequence[int], kernel: int, in_channels: int) -> int:
  """Per image: each output value (H×W×C_out) is a k·k·C_in dot product."""
  return math.prod(output_shape) * kernel * kernel * in_channels


def dense_multiply_adds(in_features: int, out_features: int) -> int:
  """Per image: each of the out values is an in-long dot product."""
  return in_features * out_features


@dataclasses.dataclass(frozen=True)
class Layer:
  """One row of the article's layer table."""
  name: str
  kind: str
  details: str
  output_shape: tuple[int, ...]  # without the batch axis, NHWC order
  params: int = 0
  receptive_field: ReceptiveField | None = None
  multiply_adds: int = 0  # Per image: each output value's k·k·C_in (conv) or in (dense).


def shape_text(shape: Sequence[int]) -> str:
  """28×28×1."""
  return '×'.join(str(d) for d in shape)


def count_params(rows: Sequence[Layer]) -> int:
  return sum(row.params for row in rows)


def count_multiply_adds(rows: Sequence[Layer]) -> int:
  """Multiply-adds per image of the convolutions and dense layers (the compute; pools,
  activations and biases are a few per output value)."""
  return sum(row.multiply_adds for row in rows)


def format_layer_table(rows: Sequence[Layer]) -> str:
  """A Markdown table like the article's, with a total row."""
  lines = ['| layer | type | details | output shape | params | multiply-adds | '
           'receptive field |', '|---|---|---|---|---:|---:|---|']
  for row in rows:
    field = row.receptive_field
    rf = (f'{field.size}×{field.size} (jump {field.jump})' if field else '')
    lines.append(f'| {row.name} | {row.kind} | {row.details} | '
                 f'{shape_text(row.output_shape)} | {row.params:,} | '
                 f'{row.multiply_adds:,} | {rf} |')
  lines.append(f'| **total** | | | | **{count_params(rows):,}** | '
               f'**{count_multiply_adds(rows):,}** | |')
  return '\n'.join(lines)
