"""The learning curve (experiments.learning_curve): its declared budget, the nesting and
pairing of its subsets, and its table rebuilt from the raw data alone."""

import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from cnn_jax import claims as claims_lib
from cnn_jax import errors, input_pipeline, learning_curve, models, results, steps, study
from configs import learning_curve as curve_config
from configs import regimes

from tests.test_sweep import _hparams_group


def test_every_size_trains_about_the_same_number_of_steps():
  config = curve_config.get_config()
  for size in (*curve_config.SIZES, *curve_config.GPU_SIZES):
    per_epoch = (size or learning_curve.all_images(config)) // config.batch_size
    epochs = learning_curve.epochs_for(size, curve_config.STEPS, config.batch_size,
                                       learning_curve.all_images(config))
    # Whole epochs, at least one: within half an epoch of the budget, or one epoch.
    assert epochs >= 1
    assert abs(epochs * per_epoch - curve_config.STEPS) <= per_epoch / 2 or epochs == 1
  assert learning_curve.epochs_for(500, 150, 128, 58_000) == 50  # 3 steps an epoch.
  assert learning_curve.epochs_for(0, 150, 128, 58_000) == 1  # 453 steps: one epoch.
  with pytest.raises(errors.ConfigError, match='size of 100 is invalid: expected at least '
                     r'one batch \(128 images\)'):
    learning_curve.epochs_for(100, 150, 128, 58_000)


def test_the_registered_grid_and_claims():
  grid = curve_config.GRID
  sizes = curve_config.SIZES
  assert [(g['max_train_examples'], g['dropout_placement']) for g in grid] == [
      (n, arm) for n in sizes for arm in ('none', 'before_fc1')]
  # The 2,000-image point is the study's dropout_sweep configuration, run for run.
  two_k = next(g for g in grid if g['max_train_examples'] == 2000)
  assert two_k['num_epochs'] == regimes.SMALL_DATA['num_epochs']
  assert curve_config.BASELINE['max_train_examples'] == 2000
  claims = [claims_lib.Claim.parse(c) for c in curve_config.CLAIMS]
  assert len(claims) == 2 * len(sizes)
  families = {c.family for c in claims}
  assert families == {'learning_curve: test_accuracy', 'learning_curve: loss_gap'}
  for c in claims:  # Each contrasts the arms at one size, nothing else.
    (w1, on), (w2, off) = c.contrast
    assert (w1, w2) == (1, -1) and on['max_train_examples'] == off['max_train_examples']
    assert {k: v for k, v in on.items() if k != 'dropout_placement'} == {
        k: v for k, v in off.items() if k != 'dropout_placement'}
    assert (on['dropout_placement'], off['dropout_placement']) == ('before_fc1', 'none')


def test_a_grid_with_two_dropout_arms_is_refused():
  meta = {'name': 'learning_curve', 'strata': [], 'grid': [
      {'max_train_examples': 500, 'dropout_placement': p, 'num_epochs': 1}
      for p in ('none', 'before_fc1', 'after_fc1')]}
  with pytest.raises(errors.ConfigError, match='expected none and one other'):
    learning_curve.claims_of(meta, {'test_accuracy': 0.005})


def _datasets(mnist_data_dir, seed):
  out = {}
  for g in curve_config.GRID:
    config = curve_config.get_config()
    config.update(g)
    config.update(seed=seed, data_dir=mnist_data_dir)
    out.setdefault(g['max_train_examples'], {})[g['dropout_placement']] = (
        input_pipeline.load_dataset(config.to_dict()))
  return out


def test_subsets_nest_per_seed_and_class_and_both_arms_share_them(mnist_data_dir):
  first = {}
  for seed in (0, 1):
    data = _datasets(mnist_data_dir, seed)
    sizes = sorted(data)
    largest = data[sizes[-1]]['none']
    classes, shares = np.unique(largest.train.labels, return_counts=True)
    shares = shares / shares.sum()
    for n in sizes:
      on, off = data[n]['before_fc1'], data[n]['none']
      # Both arms: the same images, labels and validation set.
      np.testing.assert_array_equal(on.train.images, off.train.images)
      np.testing.assert_array_equal(on.validation.labels, off.validation.labels)
      assert len(off.train.labels) == n
      # A smaller set is the start of every larger one, at this seed.
      np.testing.assert_array_equal(off.train.images, largest.train.images[:n])
      np.testing.assert_array_equal(off.validation.images, largest.validation.images)
      counts = np.array([(off.train.labels == c).sum() for c in classes])
      assert np.all(np.abs(counts - n * shares) <= 0.5 + shares * len(classes) / 2 + 1)
    first[seed] = largest.train.images[:sizes[0]]
  # Each seed draws its own subsets.
  assert not np.array_equal(first[0], first[1])


def test_both_arms_start_from_the_same_weights_and_order():
  config = curve_config.get_config()
  params = {}
  for arm in ('none', 'before_fc1'):
    model = models.create_model({**config.to_dict(), 'dropout_placement': arm}, 10)
    params[arm] = model.init(jax.random.key(3), np.zeros((1, 28, 28, 1), np.float32))
  jax.tree.map(np.testing.assert_array_equal, params['none']['params'],
               params['before_fc1']['params'])
  # The order is a function of (seed, epoch, size) alone: no arm enters it.
  np.testing.assert_array_equal(steps.epoch_permutation(3, 2, 500),
                                steps.epoch_permutation(3, 2, 500))


@pytest.mark.slow
def test_the_command_trains_reports_and_rebuilds_from_the_csv(small_config, repo_root,
                                                               tmp_path):
  workdir, output = tmp_path / 'runs', tmp_path / 'out'
  fields = ('data_dir', 'max_test_examples', 'validation_examples', 'conv_features',
            'fc_features')
  command = [sys.executable, '-m', 'experiments.learning_curve', f'--workdir={workdir}',
             f'--output_dir={output}', '--sizes=256,512', '--seeds=2', '--steps=4',
             '--config.train_eval_examples=128', '--config.eval_batch_size=250',
             *(f'--config.{k}={small_config[k]}' for k in fields)]
  done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  # 2 sizes × 2 arms × 2 shared rates × 2 seeds, counted by one progress display.
  assert '16 runs, 0 already finished; training 16' in done.stderr
  assert '[16/16 runs]' in done.stderr and 'eta' in done.stderr
  page = output / learning_curve.NAME
  table = (page / learning_curve.TABLE_FILE).read_text()
  for size in ('256', '512'):
    for metric in ('test_accuracy', 'loss_gap'):
      assert f'| {size} | {metric} |' in table
  assert (page / learning_curve.FIGURE_FILE).stat().st_size > 0
  # About 4 steps at each size: 256 images are 2 batches of 128, 512 are 4.
  meta, runs = results.read_runs(page)
  assert {r.overrides['max_train_examples']: len(r.history) for r in runs} == {
      256: 2, 512: 1}
  # TensorBoard groups the seeds of a (size, arm, rate) and shows what is swept.
  name = 'max_train_examples=256,num_epochs=2,dropout_placement=none,learning_rate=0.003'
  group, data = _hparams_group(workdir / f'{name},seed=0')
  assert group == name
  assert {'max_train_examples', 'dropout_placement', 'learning_rate'} <= set(
      data['hparams'])
  # The table again from the raw data alone, elsewhere.
  alone = tmp_path / 'alone'
  alone.mkdir()
  for file in ('runs.csv', 'sweep.json'):
    shutil.copy(page / file, alone / file)
  learning_curve.write(alone, curve_config.EFFECTS)
  assert (alone / learning_curve.TABLE_FILE).read_text() == table
  # Holm over the sizes: a family of 2 per metric.
  assert 'learning_curve: test_accuracy (2)' in table


def test_the_estimate_counts_each_runs_own_epochs_and_images(tmp_path):
  """A grid that sets num_epochs and max_train_examples is priced by each run's own."""
  config = curve_config.get_config()
  grid = study.sweep.stratified(curve_config.GRID, curve_config.STRATA)
  spec = study.SweepSpec(learning_curve.NAME, grid, {}, None, config, 2,
                         dict(curve_config.STRATA))
  plan = study.SweepPlan(spec, tmp_path, range(2), study.sweep.plan(config, grid, range(2)))
  rates = len(curve_config.STRATA['learning_rate'])
  assert study.work_left([plan]) == (
      2 * rates * sum(g['num_epochs'] for g in curve_config.GRID),
      2 * rates * sum(g['num_epochs'] * g['max_train_examples'] for g in curve_config.GRID))
