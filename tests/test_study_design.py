"""The study's design, mechanically: a training split per seed that the arms of a pair
share, learning rates every configuration trains at alike (strata), comparisons
within a stratum, and a set-up reused across seeds' splits without changing a bit."""

import json
import math

import ml_collections
import numpy as np
import pytest
from scipy import stats as scipy_stats

from cnn_jax import errors, input_pipeline, options, results, stats, sweep, train
from configs import default
import fake_sweeps


def _per_seed(config, split_seed='seed'):
  # A new ConfigDict: one keeps a field's type, and split_seed's default is a number.
  return ml_collections.ConfigDict({**config.to_dict(), 'split_seed': split_seed})


def _split(config, seed):
  return input_pipeline.load_dataset({**config.to_dict(), 'seed': seed})


def test_split_seed_seed_gives_each_seed_its_own_images_and_every_arm_the_same(small_config):
  """Guards against a 'split per seed' that trains every seed on one subset (no data
  variance in the intervals), or that gives two arms of a pair different images."""
  small_config = _per_seed(small_config)
  a, b = _split(small_config, 0), _split(small_config, 1)
  assert not np.array_equal(a.train.images, b.train.images)
  assert not np.array_equal(a.validation.images, b.validation.images)
  # Another arm (another configuration, same seed): the very same images and labels.
  other = input_pipeline.load_dataset(
      {**small_config.to_dict(), 'seed': 0, 'dropout_placement': 'none',
       'learning_rate': 3e-3})
  assert np.array_equal(a.train.images, other.train.images)
  assert np.array_equal(a.validation.labels, other.validation.labels)
  # A fixed split_seed is the old behaviour: one split for every seed.
  small_config = _per_seed(small_config, 1)
  assert np.array_equal(_split(small_config, 0).train.images, b.train.images)
  # Still class-stratified: 1,024 images, 10 classes, each within one of its share.
  counts = np.bincount(b.train.labels, minlength=10)
  full = np.bincount(input_pipeline.load_dataset(
      {**small_config.to_dict(), 'max_train_examples': 0}).train.labels, minlength=10)
  assert np.all(np.abs(counts - 1024 * full / full.sum()) <= 1.5)


@pytest.mark.slow
def test_a_kept_set_up_on_another_seeds_split_trains_what_a_fresh_one_does(small_config,
                                                                            tmp_path):
  """Guards against the set-up a sweep keeps between seeds (compiled programs, data on
  the devices) serving seed 1 the images of seed 0: seed 1 after seed 0 in one set-up
  ends exactly where seed 1 alone does, without compiling again."""
  small_config = _per_seed(small_config)
  small_config.num_epochs = 1
  kept = {}
  train.train_and_evaluate(small_config, tmp_path / 'a0', kept=kept)
  small_config.seed = 1
  after = train.train_and_evaluate(small_config, tmp_path / 'a1', kept=kept)
  alone = train.train_and_evaluate(small_config, tmp_path / 'b1')
  strip = lambda h: [{k: v for k, v in e.items() if k not in (
      'examples_per_second', 'train_seconds')} for e in h]
  assert strip(after['history']) == strip(alone['history'])
  assert after['compile_seconds'] == 0.0
  with pytest.raises(errors.ConfigError, match="split_seed='seed' gives each seed its own"):
    train.train_seeds(small_config, [0, 1], [tmp_path / 'c0', tmp_path / 'c1'])


def test_strata_cross_every_configuration_with_every_shared_value(tmp_path):
  """Guards against a shared rate that only some arms train at."""
  (tmp_path / 'grid.py').write_text(
      "GRID = [{'dropout_placement': 'none'}, {'dropout_placement': 'before_fc1'}]\n"
      "BASELINE = {'dropout_placement': 'before_fc1'}\n"
      "STRATA = {'learning_rate': [0.003, 0.01]}\n")
  grid, baseline, search, strata = sweep.load_grid(str(tmp_path / 'grid.py'))
  assert search is None and strata == {'learning_rate': [0.003, 0.01]}
  assert grid == [{'dropout_placement': p, 'learning_rate': r}
                  for p in ('none', 'before_fc1') for r in (0.003, 0.01)]
  (tmp_path / 'bad.py').write_text(
      "GRID = [{'learning_rate': 0.01}]\nSTRATA = {'learning_rate': [0.003]}\n")
  with pytest.raises(errors.ConfigError, match=r"STRATA\['learning_rate'\]=\[0.003\] is "
                                               'invalid: expected a config field that GRID'):
    sweep.load_grid(str(tmp_path / 'bad.py'))


def test_a_sweep_page_compares_each_configuration_with_the_default_at_its_own_rate(
    tmp_path):
  """Guards against comparing an arm at one rate with the default at another."""
  accuracy = {('none', 0.003): [0.950, 0.952, 0.951], ('none', 0.01): [0.940, 0.941, 0.939],
              ('before_fc1', 0.003): [0.953, 0.956, 0.953],
              ('before_fc1', 0.01): [0.949, 0.950, 0.951]}
  grid = [{'dropout_placement': p, 'learning_rate': r} for p, r in accuracy]
  root = fake_sweeps.make_sweep(
      tmp_path / 'runs', 's', 'dropout_placement', range(4), 'dropout_placement=before_fc1',
      {i: v for i, v in enumerate(accuracy.values())}, grid=grid, strata=['learning_rate'])
  results.export(root)
  meta, runs = results.read_runs(root)
  rows = results.aggregate(runs, meta['baseline'], strata=meta['strata'])
  none_fast = next(r for r in rows if r.key == 'dropout_placement=none,learning_rate=0.01')
  by_hand = scipy_stats.ttest_rel(accuracy[('none', 0.01)], accuracy[('before_fc1', 0.01)])
  assert math.isclose(none_fast.comparison.p_value, by_hand.pvalue, rel_tol=1e-9)
  assert [r.key for r in rows if r.is_baseline] == [
      'dropout_placement=before_fc1,learning_rate=0.003',
      'dropout_placement=before_fc1,learning_rate=0.01']


def test_the_sd_upper_bound_is_the_chi_square_bound():
  """Guards against a power statement that takes the SD's point estimate at its word."""
  # 95% one-sided: s · sqrt((n − 1) / χ²₀.₀₅(n − 1)); χ²₀.₀₅(9) = 3.3251 (tables).
  assert stats.sd_upper_bound(0.4, 10) == pytest.approx(0.4 * math.sqrt(9 / 3.32511),
                                                         rel=1e-5)
  assert math.isnan(stats.sd_upper_bound(0.4, 1))


def test_split_seed_takes_a_number_or_a_word_wherever_a_config_is_set():
  """Guards against a field whose allowed words the config refuses: ConfigDict keeps a
  field's type, so split_seed (a number by default) must be held untyped."""
  config = default.get_config()
  for value in ('seed', 'last', 3):
    config.split_seed = value
    assert config.to_dict()['split_seed'] == value
    options.validate_config(config.to_dict())
