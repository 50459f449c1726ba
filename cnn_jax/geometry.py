"""The article's formulas as pure functions: output sizes, receptive fields, parameters.

Nothing here imports JAX: `layer_table` describes a network from its config alone, and
the tests check the real Flax module against it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from cnn_jax.errors import ConfigError, GeometryError


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


def dropout_name(model: str, placement: str, dense_index: int) -> str | None:
  """The dropout layer in front of dense layer `dense_index` (1-based), if any.

  CNN: the article's placements around FC1. MLP: any placement but 'none' drops in front
  of every dense layer after the first (after each hidden layer).
  """
  if model == 'cnn':
    if dense_index == 1 and placement in ('before_fc1', 'both'):
      return 'dropout_before_fc1'
    if dense_index == 2 and placement in ('after_fc1', 'both'):
      return 'dropout_after_fc1'
    return None
  return f'dropout{dense_index}' if dense_index > 1 and placement != 'none' else None


# The kinds of layer `conv_block_order` and `head_order` may list: the layer table and
# the Flax modules build each of these, and refuse any other (`unknown_kind`).
CONV_BLOCK_KINDS = ('conv', 'batch_norm', 'activation', 'pool', 'dropout')
HEAD_KINDS = ('dropout', 'dense', 'batch_norm', 'activation')


def unknown_kind(order: str, kind: str, name: str, kinds: Sequence[str]) -> ConfigError:
  """The one-line error for a layer of a kind nothing builds (never a fall-through)."""
  return ConfigError(f'geometry.{order} lists layer {name!r} of kind {kind!r}, which '
                     f'nothing builds: expected one of {", ".join(kinds)}')


def conv_block_order(index: int, config: Mapping[str, Any]) -> list[tuple[str, str]]:
  """Conv block `index` (1-based) as (kind, name) in the order it computes: conv,
  BatchNorm (batch_norm conv/both), activation, pool, dropout (conv_dropout_rate > 0);
  that dropout in front of the BatchNorm instead where dropout_before_batch_norm. The
  one order the Flax module builds and the layer table lists."""
  norm = config.get('batch_norm', 'none') in ('conv', 'both')
  drop = config.get('conv_dropout_rate', 0.0) > 0
  early = drop and norm and config.get('dropout_before_batch_norm', False)
  return [('conv', f'conv{index}'),
          *([('dropout', f'conv_dropout{index}')] if early else []),
          *([('batch_norm', f'bn{index}')] if norm else []),
          ('activation', f'act{index}'), ('pool', f'pool{index}'),
          *([('dropout', f'conv_dropout{index}')] if drop and not early else [])]


def head_order(config: Mapping[str, Any], num_dense: int, activation: bool
               ) -> list[tuple[str, str]]:
  """The dense head (after flatten) as (kind, name) in the order it computes: fc1..fcN
  with dropout where `dropout_name` puts it, FC1's BatchNorm (CNN, batch_norm fc1/both)
  before its activation, and the dropout after FC1 in front of that BatchNorm where
  dropout_before_batch_norm; `activation`: one after each hidden layer. The one order
  the Flax modules build and the layer table lists."""
  model, placement = config['model'], config['dropout_placement']
  norm_fc1 = model == 'cnn' and config.get('batch_norm', 'none') in ('fc1', 'both')
  early = (dropout_name(model, placement, 2) if norm_fc1 and num_dense > 1
           and config.get('dropout_before_batch_norm', False) else None)
  order = []
  for i in range(1, num_dense + 1):
    name = dropout_name(model, placement, i)
    if name and name != early:
      order.append(('dropout', name))
    order.append(('dense', f'fc{i}'))
    if i == 1 and norm_fc1:
      order += [('dropout', early)] if early else []
      order.append(('batch_norm', 'fc1_bn'))
    if i < num_dense and activation:
      order.append(('activation', f'fc{i}_act'))
  return order


def batch_norm_row(name: str, shape: tuple[int, ...],
                   field: ReceptiveField | None = None) -> Layer:
  """A BatchNorm over the last axis: a scale and a shift per channel (its running mean
  and variance are state, not parameters), one multiply-add per value in evaluation."""
  return Layer(name, 'BatchNorm', f'{shape[-1]} channels', shape, 2 * shape[-1], field,
               math.prod(shape))


def shape_text(shape: Sequence[int]) -> str:
  """28×28×1."""
  return '×'.join(str(d) for d in shape)


def _add_conv_rows(config: Mapping[str, Any], rows: list[Layer]) -> tuple[int, int, int]:
  """Appends the conv/activation/pool rows to `rows`; returns the last output shape."""
  height, width, channels = rows[-1].output_shape
  field = ReceptiveField()
  kernel, pad, stride = config['kernel_size'], config['padding'], config['conv_stride']
  window, pool_stride = config['pool_window'], config['pool_stride']
  for i, features in enumerate(config['conv_features'], start=1):
    height = conv_output_size(height, kernel, stride, pad, layer=f'conv{i}')
    width = conv_output_size(width, kernel, stride, pad, layer=f'conv{i}')
    field = field.then(kernel, stride, pad)
    rows.append(Layer(
        f'conv{i}', 'Conv2D', f'{channels}→{features}, {kernel}×{kernel}, '
        f's{stride}, p{pad}', (height, width, features),
        conv_params(channels, features, kernel), field,
        height * width * features * kernel * kernel * channels))
    channels = features
    order = conv_block_order(i, config)
    if order[0] != ('conv', f'conv{i}'):
      raise ConfigError(f'geometry.conv_block_order lists {order[0]!r} first in block '
                        f'{i}: expected its conv, (\'conv\', \'conv{i}\')')
    for kind, name in order[1:]:
      if kind == 'batch_norm':
        rows.append(batch_norm_row(name, (height, width, channels), field))
      elif kind == 'activation':
        rows.append(Layer(name, 'Activation', config['activation'],
                          (height, width, channels), receptive_field=field))
      elif kind == 'dropout':
        rows.append(Layer(name, 'Dropout', f"p={config['conv_dropout_rate']:g}",
                          (height, width, channels), receptive_field=field))
      elif kind == 'pool':
        height = pool_output_size(height, window, pool_stride, layer=name)
        width = pool_output_size(width, window, pool_stride, layer=name)
        field = field.then(window, pool_stride, 0)
        rows.append(Layer(
            name, f'{config["pooling"].capitalize()}Pool',
            f'{window}×{window}, s{pool_stride}', (height, width, channels),
            receptive_field=field))
      else:  # 'conv' too: a block has one, first.
        raise unknown_kind('conv_block_order', kind, name, CONV_BLOCK_KINDS[1:])
  return height, width, channels


def layer_table(config: Mapping[str, Any], input_shape: Sequence[int],
                num_classes: int) -> list[Layer]:
  """The article's table (layer, type, details, output shape, params, receptive field).

  Computed from the config alone, for the CNN or the MLP, without building the model.
  Row names equal the names the Flax modules sow their intermediates under.
  """
  height, width, channels = input_shape
  rows = [Layer('input', 'Input', 'image', (height, width, channels),
                receptive_field=ReceptiveField())]
  model = config['model']
  placement, dropout_rate = config['dropout_placement'], config['dropout_rate']
  if model == 'cnn':
    try:
      height, width, channels = _add_conv_rows(config, rows)
    except GeometryError as e:
      e.rows_before = rows
      raise
    hidden = [config['fc_features']]
    hidden_activation = config['fc_activation']
  elif model == 'mlp':
    hidden = list(config['mlp_hidden_features'])
    hidden_activation = config['activation']
  else:
    raise ValueError(f"model must be one of 'cnn', 'mlp', got {model!r}")

  features = height * width * channels
  rows.append(Layer('flatten', 'Flatten', shape_text(rows[-1].output_shape) + ' → '
                    + str(features), (features,)))
  widths = hidden + [num_classes]
  for kind, name in head_order(config, len(widths), hidden_activation != 'none'):
    if kind == 'dropout':
      rows.append(Layer(name, 'Dropout', f'p={dropout_rate:g}', (features,)))
    elif kind == 'dense':
      out = widths[int(name[2:]) - 1]
      rows.append(Layer(name, 'Linear', f'{features}→{out}', (out,),
                        dense_params(features, out), multiply_adds=features * out))
      features = out
    elif kind == 'batch_norm':
      rows.append(batch_norm_row(name, (features,)))
    elif kind == 'activation':
      rows.append(Layer(name, 'Activation', hidden_activation, (features,)))
    else:
      raise unknown_kind('head_order', kind, name, HEAD_KINDS)
  return rows


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
