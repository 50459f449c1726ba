"""The real Flax modules against the article's table, and the options' semantics."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from cnn_jax import errors, geometry, models, options

MNIST = (28, 28, 1)
TINY = {"conv_features": (4, 8), "fc_features": 16}  # conftest.TINY_NETWORK.


def config_with(**overrides):
  config = default.get_config()
  config.update(overrides)
  options.validate_config(config)
  return config


def init_params(model, input_shape):
  return jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((2, *input_shape))))['params']


def sown_shapes(model, input_shape):
  """Each intermediate's shape, without the batch axis, from an abstract forward pass."""
  def forward():
    x = jnp.zeros((2, *input_shape))
    params = model.init(jax.random.key(0), x)
    return models.layer_outputs(model, params, x, False)[1]
  return {name: value.shape[1:] for name, value in jax.eval_shape(forward).items()}


def test_article_cnn_has_421642_parameters_in_the_articles_layers():
  params = init_params(models.create_model(default.get_config(), 10), MNIST)
  shapes = jax.tree.map(lambda x: x.shape, params)
  assert shapes == {
      'conv1': {'kernel': (3, 3, 1, 32), 'bias': (32,)},
      'conv2': {'kernel': (3, 3, 32, 64), 'bias': (64,)},
      'fc1': {'kernel': (3136, 128), 'bias': (128,)},
      'fc2': {'kernel': (128, 10), 'bias': (10,)},
  }
  assert sum(x.size for x in jax.tree.leaves(params)) == 421_642


VARIANTS = [
    dict(),
    dict(padding=0),
    dict(pooling='avg', pool_window=3, pool_stride=2),
    dict(pool_window=3, pool_stride=2, dropout_placement='both', fc_activation='tanh'),
    dict(dropout_placement='none', activation='leaky_relu'),
    dict(conv_features=(8, 16, 32), kernel_size=5, padding=2, fc_features=64),
    dict(conv_stride=2, padding=1, kernel_size=2, conv_features=(4,)),
    dict(model='mlp'),
    dict(model='mlp', mlp_hidden_features=(), dropout_placement='none'),
    dict(model='mlp', mlp_hidden_features=(64, 32), dropout_placement='both'),
    dict(batch_norm='both', dropout_placement='both', fc_activation='relu'),
    dict(batch_norm='conv', conv_dropout_rate=0.1, dropout_before_batch_norm=True),
    dict(batch_norm='fc1', dropout_placement='after_fc1', dropout_before_batch_norm=True,
         conv_dropout_rate=0.2, fc_activation='relu'),
]


@pytest.mark.parametrize('overrides', VARIANTS, ids=str)
@pytest.mark.parametrize('input_shape,classes', [(MNIST, 10), ((32, 32, 3), 100)])
def test_module_matches_layer_table(overrides, input_shape, classes):
  config = config_with(**overrides)
  table = models.layer_table(config, input_shape, classes)
  model = models.create_model(config, classes)
  sown = sown_shapes(model, input_shape)
  expected = {row.name: row.output_shape for row in table if row.name != 'input'}
  assert sown == expected
  params = init_params(model, input_shape)
  assert sum(x.size for x in jax.tree.leaves(params)) == geometry.count_params(table)


@pytest.mark.parametrize('overrides', [
    dict(activation=a, pooling=p, pool_window=w, pool_stride=2,
         dropout_placement='both' if w == 3 else 'none')
    for a in options.Activation for p in options.Pooling for w in (2, 3)
] + [v for v in VARIANTS if v.get('model') == 'mlp'], ids=str)
def test_every_option_trains_forward_and_backward(overrides):
  config = config_with(**overrides)
  model = models.create_model(config, 10)
  x = jax.random.uniform(jax.random.key(0), (4, *MNIST))
  params = model.init(jax.random.key(1), x)

  def loss(p):
    return model.apply(p, x, train=True, rngs={'dropout': jax.random.key(2)}).sum()

  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  assert np.isfinite(value)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert any(np.abs(g).sum() > 0 for g in jax.tree.leaves(grads['params']['fc1']))


def apply(model, params, x, train, seed):
  return models.layer_outputs(model, params, x, train, {'dropout': jax.random.key(seed)})


@pytest.mark.parametrize('placement', list(options.DropoutPlacement))
def test_dropout_placement_semantics(placement):
  model = models.create_model(config_with(dropout_placement=placement,
                                          dropout_rate=0.5), 10)
  x = jax.random.uniform(jax.random.key(0), (8, *MNIST))
  params = model.init(jax.random.key(1), x)
  eval_a, _ = apply(model, params, x, False, 1)
  eval_b, _ = apply(model, params, x, False, 2)
  np.testing.assert_array_equal(eval_a, eval_b)  # Evaluation is deterministic.
  train_a, inter = apply(model, params, x, True, 1)
  train_b, _ = apply(model, params, x, True, 2)
  if placement == 'none':
    np.testing.assert_array_equal(train_a, eval_a)
    assert not any(name.startswith('dropout') for name in inter)
    return
  assert not np.allclose(train_a, train_b)
  before = placement in ('before_fc1', 'both')
  after = placement in ('after_fc1', 'both')
  assert ('dropout_before_fc1' in inter) == before
  assert ('dropout_after_fc1' in inter) == after
  for name, source in (('dropout_before_fc1', 'flatten'), ('dropout_after_fc1', 'fc1')):
    if name in inter:
      kept = np.asarray(inter[name]) != 0
      nonzero_source = np.asarray(inter[source]) != 0
      dropped = 1 - kept[nonzero_source].mean()
      assert 0.4 < dropped < 0.6  # Rate 0.5, on hundreds of units.
      # Survivors are scaled by 1 / (1 − rate).
      np.testing.assert_allclose(np.asarray(inter[name])[kept],
                                 2 * np.asarray(inter[source])[kept], rtol=1e-6)


def test_no_activation_between_fc1_and_fc2_by_default():
  model = models.create_model(default.get_config(), 10)
  x = jax.random.uniform(jax.random.key(0), (4, *MNIST))
  params = model.init(jax.random.key(1), x)
  _, inter = apply(model, params, x, False, 0)
  fc1 = np.asarray(inter['fc1'])
  assert (fc1 < 0).any()  # Not rectified: no ReLU after FC1.
  logits = fc1 @ params['params']['fc2']['kernel'] + params['params']['fc2']['bias']
  np.testing.assert_allclose(apply(model, params, x, False, 0)[0], logits, rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize('shape', [(2, 28, 28, 3), (3, 7, 9, 5), (1, 13, 13, 2)])
@pytest.mark.parametrize('kind,window,stride', [
    ('max', 2, 2), ('avg', 2, 2), ('max', 3, 3), ('max', 3, 2), ('avg', 3, 2)])
def test_pool_matches_flax_values_and_gradients(shape, kind, window, stride):
  x = jax.random.normal(jax.random.key(0), shape)  # Continuous: no tied maxima.
  flax_pool = nn.max_pool if kind == 'max' else nn.avg_pool
  ours = lambda x: models.pool(x, kind, window, stride)
  theirs = lambda x: flax_pool(x, (window, window), (stride, stride), padding='VALID')
  np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-6)
  weights = jax.random.normal(jax.random.key(1), theirs(x).shape)
  grad_ours = jax.grad(lambda x: (ours(x) * weights).sum())(x)
  grad_theirs = jax.grad(lambda x: (theirs(x) * weights).sum())(x)
  np.testing.assert_allclose(grad_ours, grad_theirs, rtol=1e-6, atol=1e-7)


def test_leaky_relu_slope_is_used():
  act = models.activation_fn('leaky_relu', 0.2)
  np.testing.assert_allclose(act(jnp.array([-1.0, 2.0])), [-0.2, 2.0])
  with pytest.raises(ValueError, match='activation must be one of'):
    models.activation_fn('swish')


def test_each_model_attribute_is_the_config_field_of_its_name():
  """create_model passes config fields to the modules by name: a module attribute that
  is not a field (a typo, a rename on one side) would fail here, not in a sweep."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  for kind, cls in models.MODELS.items():
    names = {f.name for f in dataclasses.fields(cls)} - {'num_classes', 'parent', 'name'}
    assert names <= set(options.FIELDS), (kind, names - set(options.FIELDS))
    config = dict(default.get_config().to_dict(), model=kind, dropout_rate=0.4)
    model = models.create_model(config, 7)
    assert model.num_classes == 7 and model.dropout_rate == 0.4
    assert all(getattr(model, n) == (tuple(config[n]) if isinstance(config[n], list)
                                     else config[n]) for n in names)


@pytest.mark.parametrize('rate', [0.25, 0.6])
@pytest.mark.parametrize('model_kind, placement', [
    ('cnn', 'before_fc1'), ('cnn', 'after_fc1'), ('cnn', 'both'), ('mlp', 'both')])
def test_dropout_zeroes_its_rate_of_units_and_scales_the_rest(model_kind, placement,
                                                               rate):
  """In training each dropout layer zeroes a fraction of its (non-zero) inputs within
  binomial error of `rate` (not 1 − rate: the article's 0.25 drops a quarter) and
  multiplies the rest by 1 / (1 − rate); in eval mode it passes its input unchanged."""
  config = config_with(model=model_kind, dropout_placement=placement, dropout_rate=rate,
                       **(TINY if model_kind == 'cnn' else
                          {'mlp_hidden_features': (512, 128)}))
  model = models.create_model(config, 10)
  x = jax.random.uniform(jax.random.key(0), (256, *MNIST))
  params = model.init(jax.random.key(1), x)
  sources = {'dropout_before_fc1': 'flatten', 'dropout_after_fc1': 'fc1',
             'dropout2': 'fc1_act', 'dropout3': 'fc2_act'}
  _, trained = apply(model, params, x, True, 3)
  _, evaluated = apply(model, params, x, False, 3)
  layers = [name for name in sources if name in trained]
  assert layers and all(name in evaluated for name in layers)
  for name in layers:
    source = np.asarray(trained[sources[name]])
    out = np.asarray(trained[name])
    live = source != 0
    n = live.sum()
    dropped = float((out[live] == 0).mean())
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / n) + 1e-3, (name, dropped)
    kept = live & (out != 0)
    np.testing.assert_allclose(out[kept], source[kept] / (1 - rate), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(evaluated[name]),
                                  np.asarray(evaluated[sources[name]]))


@pytest.mark.parametrize('where,model', [
    ('conv_block_order', 'cnn'), ('head_order', 'cnn'), ('head_order', 'mlp')])
def test_the_modules_refuse_a_layer_kind_they_do_not_know_in_one_line(monkeypatch, where,
                                                                      model):
  """A kind added to an order but to no builder is an error, never built as some other
  layer (the CNN's blocks once built any unknown kind as Dropout); the table, read from
  the module, and validate_geometry say the same line."""
  original = getattr(models, where)
  monkeypatch.setattr(models, where,
                      lambda *a, **k: original(*a, **k) + [('group_norm', 'gn_x')])
  models._remembered_table.cache_clear()  # pylint: disable=protected-access
  config = (dict(config_with(model=model), **TINY) if model == 'cnn'
            else config_with(model=model))
  module = models.create_model(config, 10)
  for build in (lambda: module.init(jax.random.key(0), jnp.zeros((1, *MNIST))),
                lambda: models.layer_table(config, MNIST, 10),
                lambda: options.validate_geometry(config, MNIST, 10)):
    with pytest.raises(errors.ConfigError) as error:
      build()
    message = str(error.value)
    assert '\n' not in message
    assert message.startswith(f"models.{where} lists layer 'gn_x' of kind 'group_norm', "
                              'which nothing builds: expected one of ')
    assert 'batch_norm' in message


class _Toy(nn.Module):
  """A model no table code knows: nn.Conv ('SAME', stride 2), a residual block of two
  convs (nested), a BatchNorm, an avg pool, flatten, dropout, dense."""
  num_classes: int = 10
  width: int = 6

  @nn.compact
  def __call__(self, x, train=False):
    x = nn.Conv(self.width, (3, 3), strides=2, padding='SAME', name='stem')(x)
    x = nn.relu(x)
    models.record(self, 'stem_act', x, 'activation', function='relu')
    x = x + _ToyBlock(self.width, name='block')(x)
    x = nn.BatchNorm(use_running_average=not train, name='norm')(x)
    x = nn.avg_pool(x, (2, 2), (2, 2))
    models.record(self, 'pool', x, 'pool', pooling='avg', window=2, stride=2)
    x = x.reshape((x.shape[0], -1))
    models.record(self, 'flatten', x, 'flatten')
    x = nn.Dropout(0.3, name='drop')(x, deterministic=not train)
    return nn.Dense(self.num_classes, name='head')(x)


class _ToyBlock(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.width, (3, 3), padding=1, name='a')(x)
    return nn.Conv(self.width, (1, 1), padding='VALID', name='b')(nn.relu(x))


@pytest.mark.parametrize('input_shape,classes', [(MNIST, 10), ((32, 32, 3), 7)])
def test_a_registered_module_gets_its_table_with_no_table_code(monkeypatch, input_shape,
                                                               classes):
  monkeypatch.setitem(models.MODELS, 'toy', _Toy)
  model = models.create_model({'model': 'toy', 'width': 6}, classes)
  rows = models.module_table(model, input_shape)
  h, _, c = input_shape
  s1 = h // 2  # 'SAME', stride 2 (28 and 32 are even).
  s2 = geometry.pool_output_size(s1, 2, 2)
  rf = geometry.ReceptiveField()
  stem = rf.then(3, 2, 0)  # SAME pads an even input by 1 in all: 0 before row 0.
  block_a = stem.then(3, 1, 1)
  assert [(r.name, r.kind, r.output_shape, r.params, r.multiply_adds,
           r.receptive_field) for r in rows] == [
      ('input', 'Input', input_shape, 0, 0, rf),
      ('stem', 'Conv2D', (s1, s1, 6), geometry.conv_params(c, 6, 3),
       geometry.conv_multiply_adds((s1, s1, 6), 3, c), stem),
      ('stem_act', 'Activation', (s1, s1, 6), 0, 0, stem),
      ('block/a', 'Conv2D', (s1, s1, 6), geometry.conv_params(6, 6, 3),
       geometry.conv_multiply_adds((s1, s1, 6), 3, 6), block_a),
      ('block/b', 'Conv2D', (s1, s1, 6), geometry.conv_params(6, 6, 1),
       geometry.conv_multiply_adds((s1, s1, 6), 1, 6), block_a.then(1, 1, 0)),
      ('norm', 'BatchNorm', (s1, s1, 6), geometry.batch_norm_params(6), s1 * s1 * 6,
       block_a),
      ('pool', 'AvgPool', (s2, s2, 6), 0, 0, block_a.then(2, 2, 0)),
      ('flatten', 'Flatten', (s2 * s2 * 6,), 0, 0, None),
      ('drop', 'Dropout', (s2 * s2 * 6,), 0, 0, None),
      ('head', 'Linear', (classes,), geometry.dense_params(s2 * s2 * 6, classes),
       geometry.dense_multiply_adds(s2 * s2 * 6, classes), None)]
  params = init_params(model, input_shape)
  assert geometry.count_params(rows) == sum(x.size for x in jax.tree.leaves(params))
  recorded = sown_shapes(model, input_shape)
  assert recorded == {r.name: r.output_shape for r in rows
                      if r.name in ('stem_act', 'pool', 'flatten')}
  assert rows[1].details == f'{c}→6, 3×3, s2, p0' and rows[8].details == 'p=0.3'


def test_a_layer_kind_the_table_cannot_describe_is_one_line():
  class Unrecorded(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      models.record(self, 'gelu', nn.gelu(x), 'gelu')
      return x

  class Unknown(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      return nn.LayerNorm(name='ln')(x)

  with pytest.raises(errors.ConfigError, match=r"^models.record: layer 'gelu' of kind "
                     r"'gelu' with \[\]: expected one of activation with \['function'\]"):
    models.module_table(Unrecorded(), MNIST)
  with pytest.raises(errors.ConfigError, match=r"^models.layer_table: layer 'ln' is a "
                     "LayerNorm, which the table does not describe: expected a Conv2D"):
    models.module_table(Unknown(), MNIST)

  class Dilated(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      return nn.Conv(4, (3, 3), kernel_dilation=2, name='dilated')(x)

  with pytest.raises(errors.ConfigError, match=r"^models.layer_table: layer 'dilated': "
                     "the table describes square, undilated convs"):
    models.module_table(Dilated(), MNIST)


def test_the_model_only_fields_are_the_attributes_one_module_lacks():
  """The rules `model cnn` / `model mlp` (options.FIELDS) against the modules: a field
  only one module takes acts only with that model (dropout_before_batch_norm: only
  beside a BatchNorm, which takes model cnn), and no other field has such a rule."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  takes = {kind: {f.name for f in dataclasses.fields(cls)} - {'num_classes', 'parent',
                                                              'name'}
           for kind, cls in models.MODELS.items()}
  for kind, other in (('cnn', 'mlp'), ('mlp', 'cnn')):
    only = {k for k, f in options.FIELDS.items()
            if f.applies and f.applies.fields == ('model',)
            and f.applies.when({'model': kind}) and not f.applies.when({'model': other})}
    assert only <= takes[kind] - takes[other], kind
    for field in takes[kind] - takes[other] - only:
      config = dict(default.get_config().to_dict(), model=other)
      assert not options.FIELDS[field].applies.when(config), field
