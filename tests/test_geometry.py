"""The article's formulas against its own numbers and against brute force, and the
layer table the Flax module gives against them."""

import itertools
import math

import pytest

from configs import default
from cnn_jax import errors, geometry, models

MNIST = (28, 28, 1)


def brute_force_positions(size, kernel, stride, padding):
  """Counts the window positions that fit inside the padded input."""
  return sum(1 for start in range(0, size + 2 * padding, stride)
             if start + kernel <= size + 2 * padding)


def test_article_output_sizes():
  assert geometry.conv_output_size(28, 3, 1, 1) == 28
  assert geometry.conv_output_size(28, 3, 1, 0) == 26
  assert geometry.pool_output_size(28, 2, 2) == 14
  assert geometry.pool_output_size(14, 2, 2) == 7
  # The padding-0 network's second pool rounds down: 11 → 5, so FC1 sees 5·5·64 = 1600.
  assert geometry.pool_output_size(11, 2, 2) == 5


@pytest.mark.parametrize('size,kernel,stride,padding', [
    (s, k, st, p) for s, k, st, p in itertools.product(
        (1, 5, 7, 12, 28, 31), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2)) if s + 2 * p >= k])
def test_output_size_matches_brute_force(size, kernel, stride, padding):
  expected = brute_force_positions(size, kernel, stride, padding)
  assert geometry.pool_output_size(size, kernel, stride, padding) == expected
  if (size + 2 * padding - kernel) % stride == 0:
    assert geometry.conv_output_size(size, kernel, stride, padding) == expected
  else:
    with pytest.raises(errors.GeometryError, match='not an integer'):
      geometry.conv_output_size(size, kernel, stride, padding, layer='convX')


@pytest.mark.parametrize('args,match', [
    ((28, 3, 2, 0), r'conv7: .*13\.5 is not an integer'),
    ((2, 3, 1, 0), 'conv7: kernel 3 is larger than its padded input'),
    ((28, 3, 0, 0), 'conv7: stride must be an integer >= 1'),
    ((28, 3, 1, -1), 'conv7: padding must be an integer >= 0'),
    ((0, 3, 1, 1), 'conv7: input size must be an integer >= 1'),
    ((28, 2.5, 1, 1), 'conv7: kernel must be an integer'),
])
def test_output_size_errors_name_the_layer(args, match):
  with pytest.raises(errors.GeometryError, match=match):
    geometry.conv_output_size(*args, layer='conv7')


def _fields(layers):
  """The receptive field after each (kernel, stride, padding), by the article's rule."""
  fields = [geometry.ReceptiveField()]
  for layer in layers:
    fields.append(fields[-1].then(*layer))
  return fields[1:]


def test_article_receptive_fields():
  fields = _fields([(3, 1, 1), (2, 2, 0), (3, 1, 1), (2, 2, 0)])
  assert [f.size for f in fields] == [3, 4, 8, 10]
  assert [f.jump for f in fields] == [1, 2, 2, 4]
  # With padding 1 the first conv unit is centred on pixel 0.
  assert fields[0].start == 0
  assert fields[1].start == 0.5


def test_receptive_field_region():
  conv1 = geometry.ReceptiveField().then(3, 1, 1)
  assert conv1.region(5, 28) == (4, 7)
  assert conv1.region(0, 28) == (0, 2)  # Clipped: one column is padding.
  pool2 = _fields([(3, 1, 1), (2, 2, 0), (3, 1, 1), (2, 2, 0)])[-1]
  assert pool2.region(3, 28) == (9, 19)
  assert pool2.region(3, 28)[1] - pool2.region(3, 28)[0] == pool2.size


def test_parameter_counts():
  assert geometry.conv_params(1, 32, 3) == 320
  assert geometry.conv_params(32, 64, 3) == 18_496
  assert geometry.dense_params(3136, 128) == 401_536
  assert geometry.dense_params(128, 10) == 1_290
  assert geometry.conv_params(3, 8, 5, bias=False) == 600


ARTICLE_TABLE = [
    # name, output shape, params, receptive field
    ('input', (28, 28, 1), 0, 1),
    ('conv1', (28, 28, 32), 320, 3),
    ('act1', (28, 28, 32), 0, 3),
    ('pool1', (14, 14, 32), 0, 4),
    ('conv2', (14, 14, 64), 18_496, 8),
    ('act2', (14, 14, 64), 0, 8),
    ('pool2', (7, 7, 64), 0, 10),
    ('flatten', (3136,), 0, None),
    ('dropout_before_fc1', (3136,), 0, None),
    ('fc1', (128,), 401_536, None),
    ('fc2', (10,), 1_290, None),
]


def test_layer_table_is_the_articles():
  rows = models.layer_table(default.get_config(), MNIST, 10)
  got = [(r.name, r.output_shape, r.params,
          r.receptive_field.size if r.receptive_field else None) for r in rows]
  assert got == ARTICLE_TABLE
  assert geometry.count_params(rows) == 421_642
  assert rows[1].details == '1→32, 3×3, s1, p1'
  text = geometry.format_layer_table(rows)
  assert '**421,642**' in text and '| fc1 | Linear | 3136→128 | 128 | 401,536 |' in text
  # Per image: 28·28·32·9 + 14·14·64·9·32 + 3136·128 + 128·10.
  assert geometry.count_multiply_adds(rows) == 225_792 + 3_612_672 + 401_408 + 1_280
  assert '**4,241,152**' in text


@pytest.mark.parametrize('overrides', [
    {'padding': 0}, {'padding': 0, 'pool_window': 3}, {'padding': 0, 'kernel_size': 5},
    {'padding': 0, 'model': 'mlp'}])
def test_multiply_adds_are_what_xla_counts(overrides):
  """Each conv and dense layer's multiply-adds, against XLA's own cost analysis of
  the same operation (2 flops per multiply-add). Unpadded: XLA leaves out the taps
  that fall on padding, the usual count (ours) does not."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax import lax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  config = dict(default.get_config().to_dict(), **overrides)
  rows = models.layer_table(config, MNIST, 10)
  before = {r.name: prev.output_shape for prev, r in zip(rows, rows[1:])}
  for row in rows:
    if row.kind == 'Conv2D':
      h, w, c = before[row.name]
      k, s, p = config['kernel_size'], config['conv_stride'], config['padding']
      op = lambda x, kernel: lax.conv_general_dilated(
          x, kernel, (s, s), ((p, p), (p, p)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      args = (jnp.zeros((1, h, w, c)), jnp.zeros((k, k, c, row.output_shape[-1])))
    elif row.kind == 'Linear':
      op = jnp.dot
      args = (jnp.zeros((1, before[row.name][0])), jnp.zeros((before[row.name][0],
                                                               row.output_shape[0])))
    else:
      assert row.multiply_adds == 0
      continue
    cost = jax.jit(op).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    assert row.multiply_adds == cost['flops'] / 2, row.name


def test_layer_table_variants():
  config = default.get_config()
  config.padding = 0
  rows = {r.name: r for r in models.layer_table(config, MNIST, 10)}
  assert rows['conv1'].output_shape == (26, 26, 32)
  assert rows['pool2'].output_shape == (5, 5, 64)
  assert rows['fc1'].params == 1600 * 128 + 128

  config = default.get_config()
  config.pool_window, config.pool_stride = 3, 2
  config.dropout_placement = 'both'
  config.fc_activation = 'relu'
  rows = models.layer_table(config, (32, 32, 3), 100)
  by_name = {r.name: r for r in rows}
  assert by_name['pool1'].output_shape == (15, 15, 32)  # (32 − 3) / 2 + 1 = 15.5 → 15
  assert by_name['pool2'].output_shape == (7, 7, 64)
  assert by_name['conv1'].params == 3 * 3 * 3 * 32 + 32
  assert by_name['fc2'].output_shape == (100,)
  assert [r.name for r in rows][-5:] == [
      'dropout_before_fc1', 'fc1', 'fc1_act', 'dropout_after_fc1', 'fc2']


@pytest.mark.parametrize('before, names', [
    # The article's advice: dropout after BatchNorm and its activation.
    (False, ['conv1', 'bn1', 'act1', 'pool1', 'conv_dropout1', 'conv2', 'bn2', 'act2',
             'pool2', 'conv_dropout2', 'flatten', 'fc1', 'fc1_bn', 'fc1_act',
             'dropout_after_fc1', 'fc2']),
    # What it advises against: dropout in front of the BatchNorm.
    (True, ['conv1', 'conv_dropout1', 'bn1', 'act1', 'pool1', 'conv2', 'conv_dropout2',
            'bn2', 'act2', 'pool2', 'flatten', 'fc1', 'dropout_after_fc1', 'fc1_bn',
            'fc1_act', 'fc2']),
])
def test_batch_norm_and_dropout_order(before, names):
  config = default.get_config()
  config.update(batch_norm='both', dropout_placement='after_fc1', fc_activation='relu',
                conv_dropout_rate=0.1, dropout_before_batch_norm=before)
  rows = models.layer_table(config, MNIST, 10)
  assert [r.name for r in rows[1:]] == names
  by_name = {r.name: r for r in rows}
  assert by_name['bn2'].params == 2 * 64 and by_name['fc1_bn'].params == 2 * 128
  # After the pool, or in front of the BatchNorm before it.
  assert by_name['conv_dropout2'].output_shape == ((14, 14, 64) if before else (7, 7, 64))
  assert geometry.count_params(rows) == 421_642 + 2 * (32 + 64 + 128)


def test_mlp_table():
  config = default.get_config()
  config.model = 'mlp'
  config.dropout_placement = 'after_fc1'
  rows = models.layer_table(config, MNIST, 10)
  assert geometry.count_params(rows) == (784 * 3136 + 3136) + (3136 * 128 + 128) + 1290
  assert [r.name for r in rows] == ['input', 'flatten', 'fc1', 'fc1_act', 'dropout2', 'fc2',
                                    'fc2_act', 'dropout3', 'fc3']


def test_layer_table_rejects_a_pool_larger_than_its_input():
  config = default.get_config()
  config.pool_window = 20
  with pytest.raises(errors.GeometryError, match='pool2: window 20 is larger'):
    models.layer_table(config, MNIST, 10)


@pytest.mark.parametrize('overrides', [
    {}, {'padding': 0}, {'padding': 0, 'kernel_size': 5},
    {'conv_stride': 2, 'padding': 1, 'kernel_size': 2, 'conv_features': (4,)},
    {'pool_window': 3, 'pool_stride': 2, 'pooling': 'avg'}, {'pool_window': 3,
                                                             'pool_stride': 3},
    {'conv_features': (8, 16, 32), 'fc_features': 64, 'dropout_placement': 'both',
     'fc_activation': 'tanh'},
    {'batch_norm': 'both', 'conv_dropout_rate': 0.1, 'dropout_placement': 'after_fc1'},
    {'batch_norm': 'conv', 'conv_dropout_rate': 0.2, 'dropout_before_batch_norm': True},
    {'model': 'mlp'}, {'model': 'mlp', 'mlp_hidden_features': (64, 32),
                       'dropout_placement': 'after_fc1'},
], ids=str)
@pytest.mark.parametrize('input_shape,classes', [(MNIST, 10), ((32, 32, 3), 100)])
def test_the_modules_table_is_the_formulas(overrides, input_shape, classes):
  """Each row the Flax module gives, recomputed from the row before it and the config
  by the formulas; and its dropouts where the config's placement puts them."""
  config = dict(default.get_config().to_dict(), **overrides)
  rows = models.layer_table(config, input_shape, classes)
  cnn = config['model'] == 'cnn'
  k, s, p = config['kernel_size'], config['conv_stride'], config['padding']
  window, pool_stride = config['pool_window'], config['pool_stride']
  convs = iter(config['conv_features'] if cnn else ())
  denses = iter(([config['fc_features']] if cnn else list(config['mlp_hidden_features']))
                + [classes])
  for before, row in zip(rows, rows[1:]):
    shape, field = before.output_shape, before.receptive_field
    spatial = field if len(shape) == 3 else None
    if row.kind == 'Conv2D':
      features = next(convs)
      out = (geometry.conv_output_size(shape[0], k, s, p),
             geometry.conv_output_size(shape[1], k, s, p), features)
      expected = (out, geometry.conv_params(shape[2], features, k),
                  geometry.conv_multiply_adds(out, k, shape[2]), field.then(k, s, p))
    elif row.kind in ('MaxPool', 'AvgPool'):
      assert row.kind == config['pooling'].capitalize() + 'Pool'
      out = (geometry.pool_output_size(shape[0], window, pool_stride),
             geometry.pool_output_size(shape[1], window, pool_stride), shape[2])
      expected = (out, 0, 0, field.then(window, pool_stride, 0))
    elif row.kind == 'Linear':
      width = next(denses)
      expected = ((width,), geometry.dense_params(shape[0], width),
                  geometry.dense_multiply_adds(shape[0], width), None)
    elif row.kind == 'BatchNorm':
      expected = (shape, geometry.batch_norm_params(shape[-1]), math.prod(shape), spatial)
    elif row.kind == 'Flatten':
      expected = ((math.prod(shape),), 0, 0, None)
    else:
      assert row.kind in ('Activation', 'Dropout'), row
      expected = (shape, 0, 0, spatial)
    assert (row.output_shape, row.params, row.multiply_adds,
            row.receptive_field) == expected, row.name
  assert next(convs, None) is None and next(denses, None) is None
  placement = config['dropout_placement']
  dropouts = {r.name: r.details for r in rows if r.kind == 'Dropout'}
  if cnn:
    expected = {f'dropout_{where}_fc1': f"p={config['dropout_rate']:g}"
                for where in ('before', 'after') if placement in (f'{where}_fc1', 'both')}
    expected.update({f'conv_dropout{i}': f"p={config['conv_dropout_rate']:g}"
                     for i in range(1, len(config['conv_features']) + 1)
                     if config['conv_dropout_rate'] > 0})
  else:
    count = len(config['mlp_hidden_features']) + 1
    expected = {f'dropout{i}': f"p={config['dropout_rate']:g}"
                for i in range(2, count + 1) if placement != 'none'}
  assert dropouts == expected
