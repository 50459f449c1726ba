"""The design choices the article discusses, and the checks every config passes first.

A bad value fails here, before any data is loaded or anything is compiled, with one
line naming the field and what it allows.
"""

from __future__ import annotations

import enum
import math
from typing import Any, Callable, Mapping, Sequence

from cnn_jax import geometry


class ModelKind(enum.StrEnum):
  CNN = 'cnn'
  MLP = 'mlp'


class DropoutPlacement(enum.StrEnum):
  NONE = 'none'
  BEFORE_FC1 = 'before_fc1'
  AFTER_FC1 = 'after_fc1'
  BOTH = 'both'


class Activation(enum.StrEnum):
  RELU = 'relu'
  LEAKY_RELU = 'leaky_relu'
  TANH = 'tanh'
  SIGMOID = 'sigmoid'


class Pooling(enum.StrEnum):
  MAX = 'max'
  AVG = 'avg'


class Optimizer(enum.StrEnum):
  ADAM = 'adam'
  ADAMW = 'adamw'
  SGD = 'sgd'


class Schedule(enum.StrEnum):
  CONSTANT = 'constant'
  COSINE = 'cosine'


class ConfigError(ValueError):
  """An invalid config value; the message is one line naming the field."""


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _int(low: int, high: int | None = None) -> tuple[Callable[[Any], bool], str]:
  def ok(v: Any) -> bool:
    return _is_int(v) and v >= low and (high is None or v <= high)
  return ok, f'an integer >= {low}' + ('' if high is None else f' and <= {high}')


def _real(low: float, high: float | None = None, *, open_high: bool = True,
          open_low: bool = False) -> tuple[Callable[[Any], bool], str]:
  def ok(v: Any) -> bool:
    if not _is_real(v) or v < low or (open_low and v == low):
      return False
    return high is None or v < high or (not open_high and v == high)
  low_text = f'> {low:g}' if open_low else f'>= {low:g}'
  high_text = '' if high is None else f" and {'<' if open_high else '<='} {high:g}"
  return ok, f'a number {low_text}{high_text}'


def _choice(*allowed: str) -> tuple[Callable[[Any], bool], str]:
  allowed = tuple(str(a) for a in allowed)
  return (lambda v: v in allowed), 'one of ' + ', '.join(repr(a) for a in allowed)


def _sizes(min_len: int) -> tuple[Callable[[Any], bool], str]:
  def ok(v: Any) -> bool:
    return (isinstance(v, (tuple, list)) and len(v) >= min_len
            and all(_is_int(x) and x >= 1 for x in v))
  return ok, f'a tuple of >= {min_len} integers >= 1'


def _auto_or_int(low: int) -> tuple[Callable[[Any], bool], str]:
  # A number given on the command line to a field whose default is 'auto' arrives as text.
  def ok(v: Any) -> bool:
    return v == 'auto' or (_is_int(v) and v >= low) or (
        isinstance(v, str) and v.isdecimal() and int(v) >= low)
  return ok, f"'auto' or an integer >= {low}"


def _name() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: isinstance(v, str) and v.strip() != ''), 'a non-empty name'


def _optional_path() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: v is None or (isinstance(v, str) and v != '')), 'None or a path'


# field -> (check, what it allows). Every config has exactly these fields.
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    'model': _choice(*ModelKind),
    'dataset': _name(),
    'data_dir': _optional_path(),
    'manual_dir': _optional_path(),
    'max_train_examples': _int(0),
    'max_test_examples': _int(0),
    'conv_features': _sizes(1),
    'kernel_size': _int(1),
    'conv_stride': _int(1),
    'padding': _int(0),
    'activation': _choice(*Activation),
    'leaky_relu_slope': _real(0.0, 1.0),
    'pooling': _choice(*Pooling),
    'pool_window': _int(1),
    'pool_stride': _int(1),
    'fc_features': _int(1),
    'fc_activation': _choice('none', *Activation),
    'dropout_placement': _choice(*DropoutPlacement),
    'dropout_rate': _real(0.0, 1.0),
    'mlp_hidden_features': _sizes(0),
    'optimizer': _choice(*Optimizer),
    'learning_rate': _real(0.0, open_low=True),
    'lr_schedule': _choice(*Schedule),
    'warmup_epochs': _real(0.0),
    'momentum': _real(0.0, 1.0),
    'weight_decay': _real(0.0),
    'batch_size': _int(1),
    'eval_batch_size': _int(1),
    'num_epochs': _int(1),
    'seed': _int(0, 2**31 - 1),  # Seeds travel as int32 (jax.random.key, vmap).
    'steps_per_dispatch': _auto_or_int(1),
    'log_every_steps': _int(1),
    'checkpoints_to_keep': _int(1),
}


def validate_config(config: Mapping[str, Any]) -> None:
  """Checks every field's type and range; raises ConfigError naming the first bad one."""
  unknown = sorted(set(config.keys()) - set(FIELDS))
  if unknown:
    raise ConfigError(f'config.{unknown[0]} is not a field; fields are: '
                      + ', '.join(sorted(FIELDS)))
  for field, (ok, allowed) in FIELDS.items():
    if field not in config:
      raise ConfigError(f'config.{field} is missing: expected {allowed}')
    if not ok(config[field]):
      raise ConfigError(f'config.{field}={config[field]!r} is invalid: expected {allowed}')


# Which fields decide the geometry of each kind of layer, for the error message.
_GEOMETRY_FIELDS = {'conv': ('kernel_size', 'padding', 'conv_stride'),
                    'pool': ('pool_window', 'pool_stride')}


def validate_geometry(config: Mapping[str, Any], input_shape: Sequence[int],
                      num_classes: int) -> list[geometry.Layer]:
  """The layer table for this input, or ConfigError if a layer cannot fit it.

  The error names the fields of the failing layer and of every earlier layer that shrank
  its input: a 30×30 kernel leaves 1×1 for the first pool, and the kernel is to blame.
  """
  try:
    return geometry.layer_table(config, input_shape, num_classes)
  except geometry.GeometryError as e:
    shrinking = [(before, row) for before, row in zip(e.rows_before, e.rows_before[1:])
                 if row.output_shape[:2] != before.output_shape[:2]]
    names = [row.name for _, row in shrinking] + [e.layer]
    kinds = list(dict.fromkeys(name.rstrip('0123456789') for name in names))
    fields = ', '.join(f'config.{f}={config[f]!r}'
                       for kind in kinds for f in _GEOMETRY_FIELDS.get(kind, ()))
    history = ', '.join(f'{row.name} {geometry.shape_text(before.output_shape[:2])}'
                        f'→{geometry.shape_text(row.output_shape[:2])}'
                        for before, row in shrinking)
    history = f' (before it: {history})' if history else ''
    raise ConfigError(f'{fields} do not fit a {geometry.shape_text(input_shape)} input: '
                      f'{e}{history}') from None
