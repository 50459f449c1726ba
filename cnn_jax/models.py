"""The article's CNN and the MLP baseline, as Flax Linen modules, and the layer table
any registered module describes (`layer_table`), read from the module itself.

Every layer records its output under its row's name (`layer_outputs` returns them).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import math
from typing import Any, Callable, ClassVar, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import geometry, layers
from cnn_jax.errors import ConfigError, GeometryError
from cnn_jax.geometry import Layer, ReceptiveField
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


# Layers that are functions, not submodules: a module records them with their `kind`
# and the attributes their row needs (a submodule's row comes from its own call).
RECORDED_KINDS = {'activation': ('function',), 'pool': ('pooling', 'window', 'stride'),
                  'flatten': ()}


@dataclasses.dataclass(frozen=True)
class _Step:
  """One layer of a forward pass, in the order it ran."""
  name: str
  output_shape: tuple[int, ...]  # without the batch axis
  module: nn.Module | None = None  # a leaf submodule; None: a recorded function layer
  input_shape: tuple[int, ...] | None = None
  kind: str | None = None
  attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


# The steps of the forward pass `module_table` traces; None outside it.
_TRACE: contextvars.ContextVar[list[_Step] | None] = contextvars.ContextVar(
    '_TRACE', default=None)


def record(module: nn.Module, name: str, x: jax.Array, kind: str | None = None,
           **attrs: Any) -> None:
  """Sows `x` as layer `name`'s output. kind None: the output of submodule `name`;
  otherwise a function layer, one of RECORDED_KINDS with its attributes."""
  if kind is not None and (kind not in RECORDED_KINDS
                           or set(attrs) != set(RECORDED_KINDS[kind])):
    raise ConfigError(
        f'models.record: layer {name!r} of kind {kind!r} with {sorted(attrs)}: expected '
        'one of ' + ', '.join(f'{k} with {list(a)}' for k, a in RECORDED_KINDS.items())
        + ' (or no kind for a submodule)')
  # One dict-valued variable: a variable named like a submodule ('conv1') would clash.
  module.sow('intermediates', 'layers', {name: x}, init_fn=dict,
             reduce_fn=lambda recorded, new: {**recorded, **new})
  trace = _TRACE.get()
  if trace is not None and kind is not None:
    trace.append(_Step('/'.join((*module.scope.path, name)), tuple(x.shape[1:]),
                       kind=kind, attrs=attrs))



def layer_outputs(model: nn.Module, variables: Any, x: jax.Array, train: bool = False,
                  rngs: Any = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(logits, {layer name: its output}) for the rows of `layer_table`."""
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


def unknown_kind(order: str, kind: str, name: str, kinds: Sequence[str]) -> ConfigError:
  """The one-line error for a layer of a kind nothing builds (never a fall-through)."""
  return ConfigError(f'models.{order} lists layer {name!r} of kind {kind!r}, which '
                     f'nothing builds: expected one of {", ".join(kinds)}')


# The kinds of layer `conv_block_order` and `head_order` may list.
CONV_BLOCK_KINDS = ('conv', 'batch_norm', 'activation', 'pool', 'dropout')
HEAD_KINDS = ('dropout', 'dense', 'batch_norm', 'activation')


def conv_block_order(index: int, config: Mapping[str, Any]) -> list[tuple[str, str]]:
  """Conv block `index` (1-based) as (kind, name) in the order it computes: conv,
  BatchNorm (batch_norm conv/both), activation, pool, dropout (conv_dropout_rate > 0);
  that dropout in front of the BatchNorm instead where dropout_before_batch_norm."""
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
  with dropout where the model's `dropout_name` puts it, FC1's BatchNorm (batch_norm
  fc1/both) before its activation, and the dropout after FC1 in front of that BatchNorm
  where dropout_before_batch_norm; `activation`: one after each hidden layer."""
  dropout_name = MODELS[config['model']].dropout_name
  placement = config['dropout_placement']
  norm_fc1 = config.get('batch_norm', 'none') in ('fc1', 'both')
  early = (dropout_name(placement, 2) if norm_fc1 and num_dense > 1
           and config.get('dropout_before_batch_norm', False) else None)
  order = []
  for i in range(1, num_dense + 1):
    name = dropout_name(placement, i)
    if name and name != early:
      order.append(('dropout', name))
    order.append(('dense', f'fc{i}'))
    if i == 1 and norm_fc1:
      order += [('dropout', early)] if early else []
      order.append(('batch_norm', 'fc1_bn'))
    if i < num_dense and activation:
      order.append(('activation', f'fc{i}_act'))
  return order


class CNN(nn.Module):
  """Conv → act → pool, per entry of `conv_features`; then Flatten → FC1 → FC2.

  Defaults are the article's table: 421,642 parameters on 28×28×1, dropout 0.25 in
  front of FC1 and no activation between FC1 and FC2.
  """
  KIND: ClassVar[str] = ModelKind.CNN
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

  @staticmethod
  def dropout_name(placement: str, dense_index: int) -> str | None:
    """The dropout in front of dense layer `dense_index` (1-based): the article's
    placements around FC1."""
    if dense_index == 1 and placement in ('before_fc1', 'both'):
      return 'dropout_before_fc1'
    if dense_index == 2 and placement in ('after_fc1', 'both'):
      return 'dropout_after_fc1'
    return None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = activation_fn(self.activation, self.leaky_relu_slope)
    config = _fields(self)
    for i, features in enumerate(self.conv_features, start=1):
      for kind, name in conv_block_order(i, config):
        if kind == 'conv':
          # A kernel larger than its input is refused naming the layer, as a pool's is.
          for size in x.shape[1:3]:
            geometry.output_size(size, self.kernel_size, self.conv_stride, self.padding,
                                 layer=name, floor=True)
          x = layers.Conv2D(features, self.kernel_size, self.conv_stride, self.padding,
                            name=name)(x)
          record(self, name, x)
        elif kind == 'batch_norm':
          x = _batch_norm(x, name, train)
          record(self, name, x)
        elif kind == 'activation':
          x = act(x)
          record(self, name, x, 'activation', function=self.activation)
        elif kind == 'pool':
          for size in x.shape[1:3]:
            geometry.pool_output_size(size, self.pool_window, self.pool_stride,
                                      layer=name)
          x = pool(x, self.pooling, self.pool_window, self.pool_stride)
          record(self, name, x, 'pool', pooling=self.pooling, window=self.pool_window,
                 stride=self.pool_stride)
        elif kind == 'dropout':
          x = nn.Dropout(self.conv_dropout_rate, name=name)(x, deterministic=not train)
          record(self, name, x)
        else:
          raise unknown_kind('conv_block_order', kind, name, CONV_BLOCK_KINDS)
    return _dense_head(self, x, (self.fc_features,), self.fc_activation, train)


class MLP(nn.Module):
  """The CNN-vs-ANN baseline: Flatten → (Dense → act)* → Dense.

  The default hidden widths put one dense layer as wide as the CNN's flatten (3136) in
  place of its conv stack, followed by the CNN's head (128 → classes).
  """
  KIND: ClassVar[str] = ModelKind.MLP
  num_classes: int = 10
  mlp_hidden_features: Sequence[int] = (3136, 128)
  activation: str = 'relu'
  leaky_relu_slope: float = 0.01
  dropout_placement: str = 'none'
  dropout_rate: float = 0.0

  @staticmethod
  def dropout_name(placement: str, dense_index: int) -> str | None:
    """Any placement but 'none' drops in front of every dense layer after the first."""
    return f'dropout{dense_index}' if dense_index > 1 and placement != 'none' else None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return _dense_head(self, x, tuple(self.mlp_hidden_features), self.activation, train)


def _fields(module: nn.Module) -> dict[str, Any]:
  """The module's attributes as the config fields of the same name, with its kind."""
  return {'model': module.KIND,
          **{f.name: getattr(module, f.name) for f in dataclasses.fields(module)
             if f.name not in ('parent', 'name')}}


def _batch_norm(x: jax.Array, name: str, train: bool) -> jax.Array:
  """Normalised by the batch's statistics (over the batch and space) in training, by
  their running averages (the 'batch_stats' collection) in evaluation."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)(x)


def _dense_head(module: nn.Module, x: jax.Array, hidden: Sequence[int],
                activation: str, train: bool) -> jax.Array:
  """Flatten, then the dense layers, dropouts and BatchNorm in `head_order`;
  `activation` ('none': none) after each hidden layer."""
  act = (None if activation == 'none' else
         activation_fn(activation, module.leaky_relu_slope))
  x = x.reshape((x.shape[0], -1))
  record(module, 'flatten', x, 'flatten')
  widths = list(hidden) + [module.num_classes]
  for kind, name in head_order(_fields(module), len(widths), act is not None):
    if kind == 'dropout':
      x = nn.Dropout(module.dropout_rate, name=name)(x, deterministic=not train)
      record(module, name, x)
    elif kind == 'dense':
      x = nn.Dense(widths[int(name[2:]) - 1], name=name)(x)
      record(module, name, x)
    elif kind == 'batch_norm':
      x = _batch_norm(x, name, train)
      record(module, name, x)
    elif kind == 'activation':
      x = act(x)
      record(module, name, x, 'activation', function=activation)
    else:
      raise unknown_kind('head_order', kind, name, HEAD_KINDS)
  return x


# A new model: an nn.Module here (its attributes are config fields of the same name,
# its layers submodules or `record`ed); its layer table needs no code of its own.
MODELS: dict[str, type[nn.Module]] = {ModelKind.CNN: CNN, ModelKind.MLP: MLP}


def create_model(config: Mapping[str, Any], num_classes: int) -> nn.Module:
  """The model a (validated) config describes: each module attribute is the config
  field of the same name (lists from JSON become tuples)."""
  if config['model'] not in MODELS:
    raise ConfigError(f"config.model={config['model']!r} is invalid: expected one of "
                      + ', '.join(repr(k) for k in MODELS))
  cls = MODELS[config['model']]
  names = [f.name for f in dataclasses.fields(cls)
           if f.name not in ('num_classes', 'parent', 'name')]
  return cls(num_classes=num_classes, **{
      k: tuple(config[k]) if isinstance(config[k], list) else config[k] for k in names})


# The layer table, from the module: its leaf submodules' calls (in order, with their
# attributes and shapes), its recorded function layers, and its parameter tree.

def _conv_geometry(module: nn.Module, in_shape: Sequence[int],
                   out_shape: Sequence[int]) -> tuple[int, int, int]:
  """(kernel, stride, padding before the first row) of a square Conv2D or nn.Conv."""
  if isinstance(module, layers.Conv2D):
    return module.kernel_size, module.stride, module.padding
  def as_tuple(v: Any) -> tuple[int, ...]:
    one = v is None or isinstance(v, int)
    return (v or 1,) * len(module.kernel_size) if one else tuple(v)
  kernel, strides, padding = (tuple(module.kernel_size), as_tuple(module.strides),
                              module.padding)
  dilations = as_tuple(module.kernel_dilation) + as_tuple(module.input_dilation)
  if (len(set(kernel)) != 1 or len(set(strides)) != 1 or set(dilations) != {1}
      or isinstance(padding, str) and padding not in ('VALID', 'SAME')):
    raise ConfigError(f'models.layer_table: layer {module.name!r}: the table describes '
                      'square, undilated convs with one stride and zero padding, got '
                      f'kernel {kernel}, strides {strides}, padding {padding!r}')
  k, s = kernel[0], strides[0]
  if padding == 'VALID':
    return k, s, 0
  if padding == 'SAME':  # Flax pads the lower side by half the total, rounded down.
    return k, s, max((out_shape[0] - 1) * s + k - in_shape[0], 0) // 2
  if isinstance(padding, int):
    return k, s, padding
  first = padding[0]  # ((low, high), ...) or (low, high) pairs per axis.
  return k, s, first if isinstance(first, int) else first[0]


def _module_row(step: _Step, params: Any, field: ReceptiveField | None) -> Layer:
  """The row of one leaf submodule call; `field`: its input's receptive field."""
  module, name, out = step.module, step.name, step.output_shape
  count = sum(math.prod(p.shape) for p in jax.tree.leaves(params))
  spatial = field if len(out) == 3 else None
  if isinstance(module, (layers.Conv2D, nn.Conv)):
    k, s, p = _conv_geometry(module, step.input_shape, out)
    c_in = step.input_shape[-1] // getattr(module, 'feature_group_count', 1)  # Per group.
    return Layer(name, 'Conv2D', f'{step.input_shape[-1]}→{out[-1]}, {k}×{k}, s{s}, p{p}',
                 out, count, field.then(k, s, p) if spatial else None,
                 geometry.conv_multiply_adds(out, k, c_in))
  if isinstance(module, nn.Dense):
    c_in = step.input_shape[-1]
    return Layer(name, 'Linear', f'{c_in}→{out[-1]}', out, count, spatial,
                 math.prod(out[:-1]) * geometry.dense_multiply_adds(c_in, out[-1]))
  if isinstance(module, nn.BatchNorm):
    return Layer(name, 'BatchNorm', f'{out[-1]} channels', out, count, spatial,
                 math.prod(out))
  if isinstance(module, nn.Dropout):
    return Layer(name, 'Dropout', f'p={module.rate:g}', out, count, spatial)
  raise ConfigError(f'models.layer_table: layer {name!r} is a {type(module).__name__}, '
                    'which the table does not describe: expected a Conv2D, Conv, Dense, '
                    'BatchNorm or Dropout (or a module of them)')


def _recorded_row(step: _Step, before: Sequence[int],
                  field: ReceptiveField | None) -> Layer:
  """The row of a recorded function layer; `before`: the previous row's shape."""
  name, out, attrs = step.name, step.output_shape, step.attrs
  spatial = field if len(out) == 3 else None
  if step.kind == 'activation':
    return Layer(name, 'Activation', attrs['function'], out, receptive_field=spatial)
  if step.kind == 'pool':
    window, stride = attrs['window'], attrs['stride']
    return Layer(name, f'{attrs["pooling"].capitalize()}Pool',
                 f'{window}×{window}, s{stride}', out,
                 receptive_field=field.then(window, stride, 0) if spatial else None)
  if step.kind == 'flatten':
    return Layer(name, 'Flatten', f'{geometry.shape_text(before)} → {out[0]}', out)
  raise ConfigError(f'models.layer_table: layer {name!r} has kind {step.kind!r}: '
                    f'expected one of {", ".join(RECORDED_KINDS)}')


def _rows(steps: Sequence[_Step], input_shape: Sequence[int], params: Any) -> list[Layer]:
  rows = [Layer('input', 'Input', 'image', tuple(input_shape),
                receptive_field=ReceptiveField())]
  for step in steps:
    before, field = rows[-1].output_shape, rows[-1].receptive_field
    if step.module is None:
      rows.append(_recorded_row(step, before, field))
      continue
    if step.input_shape != before:  # Something unrecorded reshaped it: field unknown.
      field = None
    subtree = params
    for key in step.name.split('/'):
      subtree = subtree.get(key, {}) if isinstance(subtree, Mapping) else {}
    rows.append(_module_row(step, subtree, field))
  return rows


def _tracer(steps: list[_Step]) -> Callable[..., Any]:
  """A method interceptor that appends each leaf submodule's call, as it returns."""
  calling: list[list[bool]] = []  # Per open call: whether it called a submodule.

  def intercept(next_fun, args, kwargs, context):
    if context.method_name != '__call__' or not args:
      return next_fun(*args, **kwargs)
    if calling:
      calling[-1][0] = True
    calling.append([False])
    try:
      y = next_fun(*args, **kwargs)
    finally:
      called_submodule = calling.pop()[0]
    if calling and not called_submodule:  # A leaf, not the model itself.
      steps.append(_Step('/'.join(context.module.scope.path), tuple(y.shape[1:]),
                         context.module, tuple(args[0].shape[1:])))
    return y
  return intercept


def module_table(model: nn.Module, input_shape: Sequence[int]) -> list[Layer]:
  """The layer table (`geometry.Layer` rows) of `model` on one `input_shape` image.

  Read from the module: an abstract `init` (no compute) runs it once, recording each
  leaf submodule's call and each `record`ed function layer in order; parameters come
  from its parameter tree. A GeometryError carries the rows before it (`rows_before`).
  Remembered per class and attributes: another seed of a run traces nothing new.
  """
  attrs = tuple((f.name, getattr(model, f.name)) for f in dataclasses.fields(model)
                if f.name not in ('parent', 'name'))
  try:
    hash(attrs)
  except TypeError:  # An unhashable attribute: not remembered.
    return _traced_table(model, input_shape)
  return list(_remembered_table(type(model), attrs, tuple(input_shape)))


@functools.lru_cache(maxsize=512)
def _remembered_table(cls: type[nn.Module], attrs: tuple[tuple[str, Any], ...],
                      input_shape: tuple[int, ...]) -> tuple[Layer, ...]:
  return tuple(_traced_table(cls(**dict(attrs)), input_shape))


def _traced_table(model: nn.Module, input_shape: Sequence[int]) -> list[Layer]:
  steps: list[_Step] = []
  token = _TRACE.set(steps)
  try:
    with nn.intercept_methods(_tracer(steps)):
      variables = jax.eval_shape(
          lambda x: model.init(jax.random.key(0), x),
          jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
  except GeometryError as e:
    e.rows_before = _rows(steps, input_shape, {})
    raise
  finally:
    _TRACE.reset(token)
  params = variables.get('params', {})
  rows = _rows(steps, input_shape, params)
  total = sum(math.prod(p.shape) for p in jax.tree.leaves(params))
  if geometry.count_params(rows) != total:
    raise ConfigError(f'models.layer_table: the rows of {type(model).__name__} hold '
                      f'{geometry.count_params(rows):,} of its {total:,} parameters: a '
                      'module owns parameters beside submodules, or one is called twice')
  return rows


def layer_table(config: Mapping[str, Any], input_shape: Sequence[int],
                num_classes: int) -> list[Layer]:
  """The table (layer, type, details, output shape, params, multiply-adds, receptive
  field) of the model `config` describes; row names are those `layer_outputs` gives."""
  return module_table(create_model(config, num_classes), input_shape)
