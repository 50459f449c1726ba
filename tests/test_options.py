"""Every bad config value fails first, in one line naming the field and what it allows."""

import subprocess
import sys

import pytest

from configs import default
from cnn_jax import errors, options

MNIST = (28, 28, 1)


def test_default_config_is_valid():
  options.validate_config(default.get_config())
  options.validate_geometry(default.get_config(), MNIST, 10)


@pytest.mark.parametrize('field,value,allowed', [
    ('padding', -1, 'an integer >= 0'),
    ('padding', 1.5, 'an integer >= 0'),
    ('padding', True, 'an integer >= 0'),
    ('dropout_rate', 1.5, 'a number >= 0 and < 1'),
    ('dropout_rate', -0.1, 'a number >= 0 and < 1'),
    ('dropout_rate', float('nan'), 'a number >= 0 and < 1'),
    ('dropout_placement', 'middle', "'none', 'before_fc1', 'after_fc1', 'both'"),
    ('activation', 'swish', "'relu', 'leaky_relu', 'tanh', 'sigmoid'"),
    ('fc_activation', 'gelu', "'none', 'relu', 'leaky_relu', 'tanh', 'sigmoid'"),
    ('pooling', 'min', "'max', 'avg'"),
    ('optimizer', 'rmsprop', "'adam', 'adamw', 'sgd'"),
    ('lr_schedule', 'step', "'constant', 'cosine'"),
    ('model', 'resnet', "'cnn', 'mlp'"),
    ('batch_size', 0, 'an integer >= 1'),
    ('num_epochs', 0, 'an integer >= 1'),
    ('learning_rate', 0.0, 'a number > 0'),
    ('conv_features', (32, 0), 'a tuple of >= 1 integers >= 1'),
    ('conv_features', (), 'a tuple of >= 1 integers >= 1'),
    ('mlp_hidden_features', (128, -3), 'a tuple of >= 0 integers >= 1'),
    ('dataset', '', 'a non-empty name'),
    ('kernel_size', 0, 'an integer >= 1'),
    ('pool_stride', 0, 'an integer >= 1'),
    ('seed', -1, 'an integer >= 0 and <= 2147483647'),
    ('seed', 2**31, 'an integer >= 0 and <= 2147483647'),
])
def test_invalid_values_name_the_field(field, value, allowed):
  config = default.get_config().to_dict()
  config[field] = value
  with pytest.raises(errors.ConfigError) as error:
    options.validate_config(config)
  message = str(error.value)
  assert message.startswith(f'config.{field}={value!r} is invalid')
  assert allowed in message
  assert '\n' not in message


def test_missing_and_unknown_fields():
  config = default.get_config().to_dict()
  del config['padding']
  with pytest.raises(errors.ConfigError, match='config.padding is missing'):
    options.validate_config(config)
  config = default.get_config().to_dict()
  config['lr'] = 0.1
  with pytest.raises(errors.ConfigError, match='config.lr is not a field'):
    options.validate_config(config)


@pytest.mark.parametrize('overrides,match', [
    ({'pool_window': 20}, r'config.pool_window=20, config.pool_stride=2 do not fit a '
                          r'28×28×1 input: pool2: window 20 is larger'),
    ({'kernel_size': 30, 'padding': 0}, r'config.kernel_size=30.* do not fit .*conv1'),
    # The kernel leaves 1×1 for pool1: the conv fields are named first, with the history.
    ({'kernel_size': 30}, r'^config.kernel_size=30, config.padding=1, config.conv_stride=1, '
                          r'config.pool_window=2, config.pool_stride=2 do not fit .*pool1: '
                          r'window 2 .*\(before it: conv1 28×28→1×1\)$'),
    ({'conv_stride': 2, 'padding': 0}, r'config.conv_stride=2.*conv1: .* not an integer'),
    ({'conv_features': (8, 8, 8, 8, 8)}, r'pool5: window 2 is larger'),
])
def test_geometry_that_cannot_fit_is_a_config_error(overrides, match):
  config = default.get_config()
  config.update(overrides)
  with pytest.raises(errors.ConfigError, match=match):
    options.validate_geometry(config, MNIST, 10)


@pytest.mark.parametrize('flag,field', [
    ('--config.padding=-1', 'config.padding=-1'),
    ('--config.dropout_placement=middle', "config.dropout_placement='middle'"),
    ('--config.dataset=no_such_dataset', "config.dataset='no_such_dataset'"),
    ('--config.pool_window=20', 'config.pool_window=20'),
])
def test_cli_prints_one_line_and_no_traceback(tmp_path, repo_root, flag, field):
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.train', f'--workdir={tmp_path / "run"}', flag],
      cwd=repo_root, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2
  errors = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
  assert len(errors) == 1 and field in errors[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'run').exists()  # Nothing was written before the check.


# A value but the default of a field the rest of the config ignores: refused in one line
# naming it and the fields that decide it; beside it, a config where the same value acts.
@pytest.mark.parametrize('overrides,field,deciding,acting', [
    ({'weight_decay': 5e-4}, 'weight_decay', "optimizer='adam'", {'optimizer': 'adamw'}),
    ({'weight_decay': 5e-4}, 'weight_decay', "optimizer='adam'", {'optimizer': 'sgd'}),
    ({'momentum': 0.5, 'optimizer': 'adamw'}, 'momentum', "optimizer='adamw'",
     {'optimizer': 'sgd'}),
    ({'leaky_relu_slope': 0.2}, 'leaky_relu_slope',
     "activation='relu', fc_activation='none'", {'activation': 'leaky_relu'}),
    ({'leaky_relu_slope': 0.2}, 'leaky_relu_slope',
     "activation='relu', fc_activation='none'", {'fc_activation': 'leaky_relu'}),
    ({'dropout_before_batch_norm': True}, 'dropout_before_batch_norm',
     "batch_norm='none', conv_dropout_rate=0.0, dropout_placement='before_fc1'",
     {'batch_norm': 'fc1', 'dropout_placement': 'both'}),
    # BatchNorm after each conv, but no dropout there: nothing to put in front of it.
    ({'dropout_before_batch_norm': True, 'batch_norm': 'conv'}, 'dropout_before_batch_norm',
     "batch_norm='conv', conv_dropout_rate=0.0", {'conv_dropout_rate': 0.1}),
    ({'early_stopping_min_epochs': 3}, 'early_stopping_min_epochs',
     'early_stopping_patience=0', {'early_stopping_patience': 2}),
    ({'mlp_hidden_features': (64,)}, 'mlp_hidden_features', "model='cnn'", {'model': 'mlp'}),
    *[({'model': 'mlp', field: value}, field, "model='mlp'", {'model': 'cnn'})
      for field, value in [('conv_features', (16, 32)), ('kernel_size', 5),
                           ('conv_stride', 2), ('padding', 0), ('pooling', 'avg'),
                           ('pool_window', 3), ('pool_stride', 1), ('fc_features', 64),
                           ('fc_activation', 'relu'), ('batch_norm', 'both'),
                           ('conv_dropout_rate', 0.1)]],
    # The model decides first: fc_activation, not the slope it would use.
    ({'model': 'mlp', 'fc_activation': 'leaky_relu', 'leaky_relu_slope': 0.2},
     'fc_activation', "model='mlp'", {'model': 'cnn'}),
    ({'model': 'mlp', 'batch_norm': 'both', 'dropout_before_batch_norm': True,
      'dropout_placement': 'after_fc1'}, 'batch_norm', "model='mlp'", {'model': 'cnn'}),
])
def test_a_field_that_has_no_effect_is_refused_naming_what_decides_it(
    overrides, field, deciding, acting):
  config = dict(default.get_config().to_dict(), **overrides)
  with pytest.raises(errors.ConfigError) as error:
    options.validate_config(config)
  message = str(error.value)
  assert '\n' not in message
  assert message.startswith(f'config.{field}={config[field]!r} has no effect with '
                            f'{deciding}'), message
  assert f'it acts only with {options.FIELDS[field].applies.needs}' in message
  if field == 'conv_features':  # The default again: accepted.
    options.validate_config(dict(config, conv_features=[32, 64]))
  options.validate_config(dict(config, **acting))  # Where it acts: accepted.


def test_a_field_at_its_default_is_never_refused_whatever_decides_where_it_acts():
  """Every pair of values of the fields the rules read, the rest at their defaults: only
  a field set to a value but its default may be refused."""
  import itertools  # pylint: disable=g-import-not-at-top
  choices = {'model': list(options.ModelKind), 'optimizer': list(options.Optimizer),
             'activation': list(options.Activation),
             'fc_activation': ['none', *options.Activation],
             'batch_norm': list(options.BatchNormPlacement),
             'dropout_placement': list(options.DropoutPlacement),
             'conv_dropout_rate': [0.0, 0.1], 'early_stopping_patience': [0, 2]}
  deciding = {k for f in options.FIELDS.values() if f.applies for k in f.applies.fields}
  assert deciding <= set(choices)
  refused = 0
  for a, b in itertools.combinations(sorted(choices), 2):
    for va, vb in itertools.product(choices[a], choices[b]):
      config = dict(default.get_config().to_dict(), **{a: va, b: vb})
      try:
        options.validate_config(config)
      except errors.ConfigError as e:
        refused += 1
        assert any(str(e).startswith(f'config.{k}={v!r} has no effect')
                   and v != options.FIELDS[k].default for k, v in ((a, va), (b, vb))), e
  assert refused  # (model=mlp with batch_norm=both, say.)


def test_dropout_before_batch_norm_acts_exactly_where_it_reorders_a_layer():
  """Its rule against the layer orders the model and the table build from."""
  import itertools  # pylint: disable=g-import-not-at-top
  from cnn_jax import models  # pylint: disable=g-import-not-at-top
  rule = options.FIELDS['dropout_before_batch_norm'].applies
  for norm, placement, rate in itertools.product(
      options.BatchNormPlacement, options.DropoutPlacement, (0.0, 0.1)):
    config = dict(default.get_config().to_dict(), batch_norm=norm,
                  dropout_placement=placement, conv_dropout_rate=rate)
    orders = [(models.conv_block_order(1, c), models.head_order(c, 2, True))
              for c in (dict(config, dropout_before_batch_norm=b) for b in (False, True))]
    assert rule.when(config) == (orders[0] != orders[1]), (norm, placement, rate)


@pytest.mark.parametrize('optimizer', list(options.Optimizer))
@pytest.mark.parametrize('field,value', [('weight_decay', 0.1), ('momentum', 0.5)])
def test_the_optimizer_fields_act_exactly_where_their_rule_says(optimizer, field, value):
  """Their rules against steps.create_optimizer: two updates in, the parameters differ
  from the default's exactly where the rule says the field acts."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from cnn_jax import steps  # pylint: disable=g-import-not-at-top
  config = dict(default.get_config().to_dict(), optimizer=optimizer,
                lr_schedule='constant', warmup_epochs=0.0)
  def after_two_steps(c):
    tx, _ = steps.create_optimizer(c, steps_per_epoch=10)
    params = {'w': jnp.arange(1.0, 4.0)}
    state = tx.init(params)
    for grad in (jnp.ones(3), jnp.array([1.0, -2.0, 0.5])):
      updates, state = tx.update({'w': grad}, state, params)
      params = {'w': params['w'] + updates['w']}
    return params['w'].tolist()
  changes = after_two_steps(config) != after_two_steps(dict(config, **{field: value}))
  assert changes == options.FIELDS[field].applies.when(config)
