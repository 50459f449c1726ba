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
