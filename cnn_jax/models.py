"""The article's CNN and the MLP baseline, as Flax Linen modules.

Every layer records its output under the name `geometry.layer_table` gives its row
(`layer_outputs` returns them), so the tests can hold the real module against the table.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import geometry, layers
from cnn_jax.options import Activation, ModelKind, Pooling


def activation_fn(name: str, leaky_relu_slope: float = 0.01) -> Callable[[jax.Array],
                                                                           jax.Array]:
  """The activation called `name` (an `Activation` value)."""
  functions = {
      Activation.RELU: nn.relu,
      Activation.LEAKY_RELU: lambda x: nn.leaky_relu(x, leaky_relu_slope),
      Activation.TANH: jnp.tanh,
      Activation.SIGMOID: nn.sigmoid,
  }
  if name not in functions:
    raise ValueError(f'activation must be one of {", ".join(functions)}, got {name!r}')
  return functions[name]


def _record(module: nn.Module, name: str, x: jax.Array) -> None:
  # One dict-valued variable: a variable named like a submodule ('conv1') would clash.
  module.sow('intermediates', 'layers', {name: x}, init_fn=dict,
             reduce_fn=lambda recorded, new: {**recorded, **new})


def layer_outputs(model: nn.Module, variables: Any, x: jax.Array, train: bool = False,
                  rngs: Any = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(logits, {layer name: its output}) for the rows of `geometry.layer_table`."""
  logits, state = model.apply(variables, x, train=train, rngs=rngs,
                              mutable=['intermediates'])
  return logits, dict(state['intermediates']['layers'])


def pool(x: jax.Array, kind: str, window: int, stride: int) -> jax.Array:
  """Max or mean pooling over NHWC `x`, VALID (rounding the output size down).

  Non-overlapping windows (window == stride, the article's 2/2) reshape and reduce:
  same values as `nn.max_pool`/`nn.avg_pool`, but the backward pass is an elementwise
  mask instead of XLA's select-and-scatter, which costs half a training step on CPU.
  Where a window has tied maxima the gradient is split between them (a valid
  subgradient); `nn.max_pool` gives it all to one.
  """
  if kind not in (Pooling.MAX, Pooling.AVG):
    raise ValueError(f"pooling must be one of 'max', 'avg', got {kind!r}")
  if window != stride:
    fn = nn.max_pool if kind == Pooling.MAX else nn.avg_pool
    return fn(x, (window, window), strides=(stride, stride), padding='VALID')
  n, h, w, c = x.shape
  oh = geometry.pool_output_size(h, window, stride)
  ow = geometry.pool_output_size(w, window, stride)
  x = x[:, :oh * window, :ow * window, :].reshape(n, oh, window, ow, window, c)
  return x.max(axis=(2, 4)) if kind == Pooling.MAX else x.mean(axis=(2, 4))


class CNN(nn.Module):
  """Conv → act → pool, per entry of `conv_features`; then Flatten → FC1 → FC2.

  Defaults are the article's table: 421,642 parameters on 28×28×1, dropout 0.25 in
  front of FC1 and no activation between FC1 and FC2.
  """
  num_classes: int = 10
  conv_features: Sequence[int] = (32, 64)
  kernel_size: int = 3
  conv_stride: int = 1
  padding: int = 1
  activation: str = 'relu'
  leaky_relu_slope: float = 0.01
  pooling: str = 'max'
  pool_window: int = 2
  pool_stride: int = 2
  fc_features: int = 128
  fc_activation: str = 'none'
  dropout_placement: str = 'before_fc1'
  dropout_rate: float = 0.25
  batch_norm: str = 'none'
  dropout_before_batch_norm: bool = False
  conv_dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = activation_fn(self.activation, self.leaky_relu_slope)
    config = _fields(self)
    for i, features in enumerate(self.conv_features, start=1):
      for kind, name in geometry.conv_block_order(i, config):
        if kind == 'conv':
          x = layers.Conv2D(features, self.kernel_size, self.conv_stride, self.padding,
                            name=name)(x)
        elif kind == 'batch_norm':
          x = _batch_norm(x, name, train)
        elif kind == 'activation':
          x = act(x)
        elif kind == 'pool':
          x = pool(x, self.pooling, self.pool_window, self.pool_stride)
        elif kind == 'dropout':
          x = nn.Dropout(self.conv_dropout_rate, name=name)(x, deterministic=not train)
        else:
          raise geometry.unknown_kind('conv_block_order', kind, name,
                                      geometry.CONV_BLOCK_KINDS)
        _record(self, name, x)
    fc_act = (None if self.fc_activation == 'none' else
              activation_fn(self.fc_activation, self.leaky_relu_slope))
    return _dense_head(self, x, (self.fc_features,), fc_act, train)


class MLP(nn.Module):
  """The CNN-vs-ANN baseline: Flatten → (Dense → act)* → Dense.

  The default hidden widths put one dense layer as wide as the CNN's flatten (3136) in
  place of its conv stack, followed by the CNN's head (128 → classes).
  """
  num_classes: int = 10
  mlp_hidden_features: Sequence[int] = (3136, 128)
  activation: str = 'relu'
  leaky_relu_slope: float = 0.01
  dropout_placement: str = 'none'
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = activation_fn(self.activation, self.leaky_relu_slope)
    return _dense_head(self, x, tuple(self.mlp_hidden_features), act, train)


def _fields(module: nn.Module) -> dict[str, Any]:
  """The module's attributes as the config fields of the same name, with its kind."""
  return {'model': ModelKind.CNN if isinstance(module, CNN) else ModelKind.MLP,
          **{f.name: getattr(module, f.name) for f in dataclasses.fields(module)
             if f.name not in ('parent', 'name')}}


def _batch_norm(x: jax.Array, name: str, train: bool) -> jax.Array:
  """Normalised by the batch's statistics (over the batch and space) in training, by
  their running averages (the 'batch_stats' collection) in evaluation."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)(x)


def _dense_head(module: nn.Module, x: jax.Array, hidden: Sequence[int],
                act: Callable[[jax.Array], jax.Array] | None, train: bool) -> jax.Array:
  """Flatten, then the dense layers, dropouts and BatchNorm in `geometry.head_order`."""
  x = x.reshape((x.shape[0], -1))
  _record(module, 'flatten', x)
  widths = list(hidden) + [module.num_classes]
  for kind, name in geometry.head_order(_fields(module), len(widths), act is not None):
    if kind == 'dropout':
      x = nn.Dropout(module.dropout_rate, name=name)(x, deterministic=not train)
    elif kind == 'dense':
      x = nn.Dense(widths[int(name[2:]) - 1], name=name)(x)
    elif kind == 'batch_norm':
      x = _batch_norm(x, name, train)
    elif kind == 'activation':
      x = act(x)
    else:
      raise geometry.unknown_kind('head_order', kind, name, geometry.HEAD_KINDS)
    _record(module, name, x)
  return x


MODELS = {ModelKind.CNN: CNN, ModelKind.MLP: MLP}


def create_model(config: Mapping[str, Any], num_classes: int) -> nn.Module:
  """The CNN or MLP a (validated) config describes: each module attribute is the config
  field of the same name (lists from JSON become tuples)."""
  if config['model'] not in MODELS:
    raise ValueError(f"model must be one of 'cnn', 'mlp', got {config['model']!r}")
  cls = MODELS[config['model']]
  names = [f.name for f in dataclasses.fields(cls)
           if f.name not in ('num_classes', 'parent', 'name')]
  return cls(num_classes=num_classes, **{
      k: tuple(config[k]) if isinstance(config[k], list) else config[k] for k in names})
