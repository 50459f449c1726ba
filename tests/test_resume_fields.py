"""Which config fields a resume may change: against what the checkpoint holds (the
train state's arrays) and what a resumed run computes."""

import json
import shutil

import jax
import numpy as np
import pytest

from configs import default
from cnn_jax import errors, models, options, steps, train
from train_states import epoch_state, make_state

# Fields the README promises a rerun may change: where data lives, how often it logs,
# how many checkpoints it keeps, the evaluation's batch, steps per dispatch.
MAY_CHANGE = {'data_dir', 'manual_dir', 'log_every_steps', 'checkpoints_to_keep',
              'eval_batch_size', 'steps_per_dispatch', 'test_every_epoch'}

# Another valid value of each field that changes the train state's arrays (with the
# other fields it needs to matter: an MLP's widths, a stride that still fits).
SHAPES = {'model': ('mlp', {}), 'conv_features': ((8, 16), {}), 'kernel_size': (5, {}),
          'padding': (0, {}), 'pool_window': (3, {}), 'pool_stride': (1, {}),
          'fc_features': (32, {}), 'optimizer': ('sgd', {}),
          'mlp_hidden_features': ((64,), {'model': 'mlp'}),
          'conv_stride': (2, {'kernel_size': 4}), 'batch_norm': ('both', {})}


def test_the_fields_a_resume_may_change_are_the_promised_ones():
  assert {k for k, f in options.FIELDS.items() if f.resumable} == MAY_CHANGE


def _arrays(config):
  """What a checkpoint of `config`'s run holds: each array's path and shape (traced,
  not computed)."""
  tx, _ = steps.create_optimizer(config, 10)
  model = models.create_model(config, 10)
  state = jax.eval_shape(lambda: steps.create_train_state(jax.random.key(0), model,
                                                          (28, 28, 1), tx))
  return [(jax.tree_util.keystr(path), np.shape(leaf)) for path, leaf in
          jax.tree_util.tree_leaves_with_path((state.params, state.opt_state,
                                                       state.model_state))]


# Another valid value of every field.
OTHER = {'dataset': 'fashion_mnist', 'data_dir': '/elsewhere', 'manual_dir': '/manual',
         'max_train_examples': 1000, 'max_test_examples': 500, 'validation_examples': 100,
         'train_eval_examples': 100, 'test_shift_pixels': 0, 'activation': 'tanh',
         'leaky_relu_slope': 0.2, 'pooling': 'avg', 'fc_activation': 'relu',
         'dropout_placement': 'both', 'dropout_rate': 0.5, 'learning_rate': 3e-3,
         'lr_schedule': 'constant', 'warmup_epochs': 0.0, 'momentum': 0.5,
         'weight_decay': 1e-4, 'batch_size': 64, 'eval_batch_size': 500, 'num_epochs': 3,
         'early_stopping_patience': 2, 'early_stopping_min_epochs': 1, 'seed': 1,
         'steps_per_dispatch': 4, 'log_every_steps': 7, 'checkpoints_to_keep': 1,
         'dropout_before_batch_norm': True, 'conv_dropout_rate': 0.1, 'split_seed': 'last',
         'test_every_epoch': True, 'shift_curve_pixels': 2,
         **{k: v for k, (v, _) in SHAPES.items()}}


# What the fields that do not act in the default config need to act (options.FIELDS'
# `applies`: a value but their default elsewhere is refused).
ACTS_WITH = {'leaky_relu_slope': {'activation': 'leaky_relu'},
             'momentum': {'optimizer': 'sgd'}, 'weight_decay': {'optimizer': 'sgd'},
             'early_stopping_min_epochs': {'early_stopping_patience': 2},
             'dropout_before_batch_norm': {'batch_norm': 'conv', 'conv_dropout_rate': 0.1},
             'mlp_hidden_features': {'model': 'mlp'}}


def test_a_rerun_that_changes_one_field_is_refused_unless_the_field_is_resumable(
    tmp_path):
  """Every field, through the check a rerun passes (config.json against the new config):
  refused naming the field and both values, unless a resume may change it."""
  assert set(OTHER) == set(options.FIELDS)
  for field, value in OTHER.items():
    config = dict(default.get_config().to_dict(), **ACTS_WITH.get(field, {}))
    (tmp_path / 'config.json').write_text(json.dumps(config, default=list))
    changed = dict(config, **{field: value})
    options.validate_config(changed)
    assert changed[field] != config[field], field
    if field in MAY_CHANGE:
      options.check_workdir(tmp_path, changed)
    else:
      with pytest.raises(errors.WorkdirConflictError, match=f'^[^(]*\\({field}: ') as e:
        options.check_workdir(tmp_path, changed)
      assert repr(json.loads(json.dumps(value, default=list))) in str(e.value), field


@pytest.mark.parametrize('field', sorted(SHAPES))
def test_a_field_that_reshapes_what_the_checkpoint_holds_may_not_change(field):
  value, context = SHAPES[field]
  config = default.get_config()
  config.update({'conv_features': (4, 8), 'fc_features': 16, 'mlp_hidden_features': (32,),
                 **context})
  before = _arrays(config)
  config[field] = value
  assert _arrays(config) != before, field
  assert not options.FIELDS[field].resumable, field


@pytest.mark.slow
def test_a_resume_that_changes_the_fields_it_may_ends_on_the_same_parameters(
    small_config, tmp_path):
  """Killed before epoch 2 was saved, resumed with every field a resume may change
  changed at once: epoch 2 ends on the uninterrupted run's parameters and figures."""
  reference = train.train_and_evaluate(small_config, tmp_path / 'reference')
  like = make_state(small_config)
  final = [np.asarray(x) for x in jax.tree.leaves(epoch_state(tmp_path / 'reference',
                                                              like, 2).params)]
  data_copy = tmp_path / 'tfds'
  shutil.copytree(pathlib_of(small_config.data_dir) / 'mnist', data_copy / 'mnist')
  changes = {'data_dir': str(data_copy), 'manual_dir': str(tmp_path / 'nowhere'),
             'log_every_steps': 7, 'checkpoints_to_keep': 1, 'eval_batch_size': 250,
             'steps_per_dispatch': '3', 'test_every_epoch': True}
  assert set(changes) == MAY_CHANGE
  workdir = tmp_path / 'resumed'
  shutil.copytree(tmp_path / 'reference', workdir)
  shutil.rmtree(workdir / 'checkpoints' / '32')  # Killed before epoch 2 was saved.
  metrics = json.loads((workdir / 'metrics.json').read_text())
  metrics['history'], metrics['completed'] = metrics['history'][:1], False
  (workdir / 'metrics.json').write_text(json.dumps(metrics))
  config = small_config.copy_and_resolve_references()
  config.update(changes)
  resumed = train.train_and_evaluate(config, workdir)  # Not refused.
  assert resumed['steps_per_dispatch'] == 3  # The changes took effect.
  for key in ('train_loss', 'validation_accuracy'):
    assert resumed['history'][1][key] == reference['history'][1][key], key
  assert 'test_accuracy' in resumed['history'][1]  # Now tested every epoch.
  assert (resumed['best_epoch'], resumed['best_test_accuracy']) == (
      reference['best_epoch'], reference['best_test_accuracy'])
  # Another evaluation batch adds the test losses in another order.
  best = resumed['best_epoch'] - 1
  assert resumed['history'][best]['test_loss'] == pytest.approx(
      reference['history'][best]['test_loss'], rel=1e-6)
  for a, b in zip(jax.tree.leaves(epoch_state(workdir, like, 2).params), final):
    np.testing.assert_array_equal(a, b)


def pathlib_of(path):
  import pathlib  # pylint: disable=g-import-not-at-top
  return pathlib.Path(path)
