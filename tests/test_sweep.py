"""Sweeps: the grid, run names, aggregation, and a tiny sweep end to end on MNIST."""

import csv
import json
import math
import pathlib
import re
import shlex
import subprocess
import sys

import filelock
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from configs import default
from cnn_jax import errors, options, results, study, sweep
import fake_sweeps
from experiments import sweep_cli

# Every sweep config there is (a new one is checked too).
SWEEPS = sorted(p.stem for p in (pathlib.Path(__file__).parent.parent / 'configs').glob(
    '*.py') if 'GRID' in p.read_text())


def test_plan_names_every_configuration_and_seed():
  grid = [{'dropout_placement': 'none'}, {'dropout_placement': 'after_fc1', 'padding': 0}]
  runs = sweep.plan(default.get_config(), grid, range(3))
  assert [r.name for r in runs] == [
      'dropout_placement=none,seed=0', 'dropout_placement=none,seed=1',
      'dropout_placement=none,seed=2', 'dropout_placement=after_fc1,padding=0,seed=0',
      'dropout_placement=after_fc1,padding=0,seed=1',
      'dropout_placement=after_fc1,padding=0,seed=2']
  config = runs[-1].config(default.get_config())
  assert (config.dropout_placement, config.padding, config.seed) == ('after_fc1', 0, 2)
  assert sweep.config_key({'conv_features': (16, 32)}) == 'conv_features=16-32'
  assert sweep.Run(0, {}, 4).name == 'seed=4'


@pytest.mark.parametrize('grid, seeds, message', [
    ([{'dropout_placment': 'none'}], [0], "sets 'dropout_placment'"),
    ([{'seed': 1}], [0], "sets 'seed'"),
    ([{'dropout_placement': 'middle'}], [0], 'config.dropout_placement='),
    ([{'padding': -1}], [0], 'config.padding=-1'),
    ([{'padding': 0}, {'padding': 0}], [0], 'lists padding=0 twice'),
    ([], [0], 'grid is empty'),
    ([{'padding': 0}], [], '--seeds'),
])
def test_plan_rejects_bad_grids_naming_the_field(grid, seeds, message):
  with pytest.raises(errors.ConfigError, match=message.replace('(', r'\(')):
    sweep.plan(default.get_config(), grid, seeds)


@pytest.mark.parametrize('name', SWEEPS)
def test_every_sweep_config_is_a_valid_grid_with_its_baseline(name, repo_root):
  grid, baseline, search, strata = sweep.load_grid(str(repo_root / 'configs' / f'{name}.py'))
  configurations = [sweep.stratum(g, strata)[0] for g in grid]
  assert len(grid) >= 2 and baseline in configurations
  # Every configuration at every combination of the shared nuisance values, once.
  assert len(grid) == len({sweep.config_key(g) for g in grid}) == len(
      {sweep.config_key(c) for c in configurations}) * math.prod(map(len, strata.values()))
  runs = sweep.plan(default.get_config(), grid, range(3))
  assert len(runs) == 3 * len(grid)
  # With the sweep's own config (its regime): every run, and every tuning run of it.
  _, module = sweep.load_config_module(str(repo_root / 'configs' / f'{name}.py'))
  own = module.get_config()
  for run in sweep.plan(own, grid, range(1)):
    config = run.config(own).to_dict()
    for value in (search.values if search else ()):
      options.validate_config(dict(config, **search.overrides, **{search.field: value}))


def test_a_grid_that_varies_a_field_the_config_ignores_is_refused_in_one_line():
  """Weight decay under Adam (the default optimizer) does nothing: a grid over it would
  train the same network twice. Refused before any run, naming both fields."""
  with pytest.raises(errors.ConfigError) as error:
    sweep.plan(default.get_config(), [{'weight_decay': 0.0}, {'weight_decay': 5e-4}],
               range(2))
  message = str(error.value)
  assert '\n' not in message
  assert message.startswith("config.weight_decay=0.0005 has no effect with "
                            "optimizer='adam': it acts only with optimizer adamw or sgd")
  config = default.get_config()
  config.optimizer = 'adamw'  # Where it acts: planned.
  assert len(sweep.plan(config, [{'weight_decay': 0.0}, {'weight_decay': 5e-4}],
                        range(2))) == 4


def test_runs_csv_holds_every_run_and_epoch_and_the_page_is_rebuilt_from_it(tmp_path):
  # Seed 0 of padding=0 peaks on validation at epoch 1, its test accuracy there counts.
  histories = {0: [[fake_sweeps.epoch(1, 0.97, validation=0.99), fake_sweeps.epoch(2, 0.98)],
                   0.975, 0.985],
               1: [0.990, 0.991, [fake_sweeps.epoch(1, 0.95)]]}  # Seed 2 unfinished.
  root = fake_sweeps.make_sweep(tmp_path, 's', 'padding', [0, 1], 1, histories)
  markdown, rows = results.write_results(root)
  with (root / results.RUNS_FILE).open() as f:
    table = list(csv.DictReader(f))
  assert len(table) == 11  # 5 runs × 2 epochs, and the unfinished run's one epoch.
  assert table[0]['configuration'] == 'padding=0' and table[0]['epoch'] == '1'
  assert float(table[0]['validation_accuracy']) == 0.99
  meta, runs = results.read_runs(root)
  assert meta['name'] == 's' and [r.completed for r in runs] == [True] * 5 + [False]
  low, base = rows
  assert low.at_best('test_accuracy') == pytest.approx([0.97, 0.975, 0.985])
  assert (base.is_baseline, base.incomplete, base.seeds) == (True, 1, [0, 1])
  # Paired over the seeds both finished (0, 1): differences −0.020, −0.016.
  assert low.comparison.n == 2
  assert low.comparison.difference == pytest.approx(-0.018)
  assert low.family == 1 and low.holm_p == pytest.approx(low.comparison.p_value)
  assert '| padding=0 | 3 | 97.67% ± 0.76 [' in markdown
  assert '**padding=1**' in markdown and '1 run(s) not finished' in markdown
  assert 'Runs trained by `python -m experiments.s` at code version `abc123`' in markdown
  # The same raw data elsewhere gives the same page.
  copy = tmp_path / 'copy'
  copy.mkdir()
  for file in (sweep.SWEEP_FILE, results.RUNS_FILE):
    (copy / file).write_bytes((root / file).read_bytes())
  meta, runs = results.read_runs(copy)
  rows = results.aggregate(runs, meta['baseline'])
  results.adjust([rows])
  assert results.write_page(copy, rows, meta, runs) == markdown
  assert (copy / 'results.png').stat().st_size > 0


def _hparams_group(run_dir: pathlib.Path) -> tuple[str, dict]:
  events = event_accumulator.EventAccumulator(str(run_dir))
  events.Reload()
  content = events.PluginTagToContent('hparams')['_hparams_/session_start_info']
  info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
  scalars = {tag: [e.value for e in events.Scalars(tag)]
             for tag in events.Tags()['scalars']}
  return info.group_name, {'hparams': dict(info.hparams), 'scalars': scalars}


@pytest.mark.slow
def test_tiny_sweep_end_to_end(small_config, repo_root, tmp_path):
  workdir = tmp_path / 'sweep'
  fields = ('data_dir', 'max_train_examples', 'max_test_examples', 'batch_size',
            'num_epochs', 'conv_features', 'fc_features')
  overrides = [f'--config.{k}={small_config[k]}' for k in fields]
  config_file = tmp_path / 'tiny_sweep.py'
  config_file.write_text(
      'from configs import default\n'
      "GRID = [{'dropout_placement': 'none'}, {'dropout_placement': 'before_fc1'}]\n"
      "BASELINE = {'dropout_placement': 'before_fc1'}\n"
      'def get_config():\n  return default.get_config()\n')
  command = [sys.executable, '-m', 'experiments.sweep', f'--workdir={workdir}',
             f'--config={config_file}', '--seeds=2', *overrides]
  done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert '4 runs, 0 already finished; training 4' in done.stderr
  assert '[4/4 runs]' in done.stderr
  names = ['dropout_placement=none,seed=0', 'dropout_placement=none,seed=1',
           'dropout_placement=before_fc1,seed=0', 'dropout_placement=before_fc1,seed=1']
  assert sorted(p.name for p in workdir.iterdir() if p.is_dir()) == sorted(names)
  for name in names:
    group, data = _hparams_group(workdir / name)
    assert group == name.rsplit(',', 1)[0]  # Seeds of one configuration group together.
    # A row of the dashboard stands for every seed of its configuration: no seed.
    assert sorted(data['hparams']) == ['dropout_placement', 'max_train_examples',
                                       'num_epochs']
    assert data['hparams']['num_epochs'].number_value == 2
    assert data['hparams']['dropout_placement'].string_value == name.split('=')[1].split(',')[0]
    assert len(data['scalars']['validation/accuracy']) == 2  # One per epoch.
    assert len(data['scalars']['test/accuracy']) == 1  # Where validation chose.
    assert len(data['scalars']['train/loss']) == 2  # log_every_steps (100) > the epoch.
  # The dashboard's columns, set once at the sweep's root: the swept field, the recipe,
  # then the metrics, accuracy first.
  root = event_accumulator.EventAccumulator(str(workdir))
  root.Reload()
  experiment = plugin_data_pb2.HParamsPluginData.FromString(
      root.PluginTagToContent('hparams')['_hparams_/experiment']).experiment
  assert [h.name for h in experiment.hparam_infos] == [
      'dropout_placement', 'max_train_examples', 'num_epochs']
  assert [m.name.tag for m in experiment.metric_infos] == [
      'validation/accuracy', 'test/accuracy', 'test/loss', 'train_eval/accuracy',
      'train/generalization_gap']
  for file in ('results.md', 'runs.csv', 'results.png'):
    assert (workdir / file).stat().st_size > 0
  assert '| **dropout_placement=before_fc1** | 2 |' in done.stdout

  # results.md records the exact command (config file, every override), the code and
  # package versions and the data used; rerunning that command gives the same page.
  page = (workdir / 'results.md').read_text()
  recorded = re.search(r'Runs trained by `([^`]*)` at code version `([^`]*)` \(python ',
                       page)
  assert recorded, page[:600]
  assert shlex.split(recorded[1]) == ['python', *command[1:]]
  assert f"{small_config['max_train_examples']:,} training images" in page
  assert f"{small_config['num_epochs']} epoch(s); seeds 0, 1" in page
  again = subprocess.run([sys.executable, *shlex.split(recorded[1])[1:]], cwd=repo_root,
                         capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert '4 runs, 4 already finished; training 0' in again.stderr
  assert (workdir / 'results.md').read_text() == page

  base = default.get_config()
  for k in fields:
    base[k] = small_config[k]
  grid, baseline, _, _ = sweep.load_grid(str(config_file))
  outcomes = sweep.run_sweep('t', base, grid, baseline, range(2), workdir)
  assert [o.status for o in outcomes] == ['skipped'] * 4  # A rerun trains nothing.

  # An interrupted run (its last epoch lost) resumes from its checkpoint.
  run_dir = workdir / names[0]
  before = json.loads((run_dir / 'metrics.json').read_text())
  lost = json.loads((run_dir / 'metrics.json').read_text())
  lost['history'], lost['completed'] = lost['history'][:1], False
  (run_dir / 'metrics.json').write_text(json.dumps(lost))
  subprocess.run(['rm', '-rf', str(run_dir / 'checkpoints' / '2')], check=True)
  outcomes = sweep.run_sweep('t', base, grid, baseline, range(2), workdir)
  assert sorted(o.status for o in outcomes) == ['skipped'] * 3 + ['trained']
  after = json.loads((run_dir / 'metrics.json').read_text())
  assert after['completed']
  for key in ('train_loss', 'validation_loss', 'validation_accuracy'):
    assert after['final'][key] == pytest.approx(before['final'][key], rel=1e-4)
  assert after['best_test_accuracy'] == pytest.approx(before['best_test_accuracy'],
                                                      abs=0.002)


def test_vmap_seeds_sweep_trains_each_configuration_once_and_falls_back_alone(
    small_config, tmp_path, caplog):
  small_config.max_train_examples = 256
  small_config.max_test_examples = 200
  small_config.num_epochs = 1
  grid = [{'dropout_placement': 'none'}, {'dropout_placement': 'after_fc1'}]
  events = []
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)
  outcomes = sweep.run_sweep('t', small_config, grid, {}, range(2), tmp_path / 'ok',
                             vmap_seeds=True, progress=lambda k, i: events.append((k, i)))
  assert [o.status for o in outcomes] == ['trained'] * 4
  assert logging.get_verbosity() == logging.INFO  # Quiet only while the sweep ran.
  for o in outcomes:
    metrics = json.loads((tmp_path / 'ok' / o.run.name / 'metrics.json').read_text())
    assert metrics['completed'] and metrics['seeds_trained_together'] == 2
  assert sorted(i['run'] for k, i in events if k == 'epoch') == sorted(
      o.run.name for o in outcomes)

  # Diverging: the group fails together, then each run alone, and each says why, in
  # its metrics.json too.
  small_config.update(optimizer='sgd', learning_rate=1e12, lr_schedule='constant')
  caplog.clear()
  outcomes = sweep.run_sweep('t', small_config, grid[:1], {}, range(2), tmp_path / 'nan',
                             vmap_seeds=True)
  assert [o.status for o in outcomes] == ['failed'] * 2
  # The group's error names the runs it stopped.
  assert re.search(r'Training seeds together failed \(NonFiniteLossError: .*at epoch 1, '
                   r'step \d+ in .*seed=0.*seed=1', caplog.text), caplog.text[-2000:]
  assert all(re.search(r'NonFiniteLossError.*at epoch 1, step \d+', o.error)
             for o in outcomes), [o.error for o in outcomes]
  for o in outcomes:
    failed = json.loads((tmp_path / 'nan' / o.run.name / 'metrics.json').read_text())
    assert failed['failed']['reason'] == 'non-finite loss' and not failed['completed']


def test_seed_groups_leave_started_runs_alone(tmp_path):
  runs = sweep.plan(default.get_config(), [{'padding': 0}, {'padding': 1}], range(2))
  started = tmp_path / runs[1].name
  (started / 'checkpoints' / '1').mkdir(parents=True)
  groups = sweep._seed_groups(runs, tmp_path)  # pylint: disable=protected-access
  assert [[r.name for r in g] for g in groups] == [
      [runs[0].name], [runs[2].name, runs[3].name], [runs[1].name]]


@pytest.mark.parametrize('text, expected', [('0/1', (0, 1)), ('2/3', (2, 3))])
def test_shard_parses_i_of_n(text, expected):
  assert sweep_cli.parse_shard(text) == expected


@pytest.mark.parametrize('text', ['1/1', '3/2', '-1/2', '1', 'a/b', '0/0', ''])
def test_bad_shard_is_one_line_naming_the_flag(text):
  with pytest.raises(errors.ConfigError, match=r'--shard=.* is invalid: expected i/n'):
    sweep_cli.parse_shard(text)


def test_shards_split_the_configurations_between_machines(tmp_path, monkeypatch):
  grid = [{'padding': 0}, {'padding': 1}, {'dropout_placement': 'none'}]
  trained = {}
  monkeypatch.setattr(sweep, '_train_runs', lambda base, group, workdir, notify, kept: [
      trained[shard].update([r.name]) or ('trained', '') for r in group])
  for shard in range(2):
    trained[shard] = set()
    outcomes = sweep.run_sweep('t', default.get_config(), grid, {}, range(2), tmp_path,
                               shard=(shard, 2))
    assert {o.run.name for o in outcomes if o.status == 'trained'} == trained[shard]
  assert trained[0] == {'padding=0,seed=0', 'padding=0,seed=1',
                        'dropout_placement=none,seed=0', 'dropout_placement=none,seed=1'}
  assert trained[1] == {'padding=1,seed=0', 'padding=1,seed=1'}


def test_a_sweep_refuses_runs_trained_with_another_config_or_restarts_them(
    tmp_path, monkeypatch):
  grid = [{'dropout_placement': 'none'}, {'dropout_placement': 'after_fc1'}]
  old = default.get_config()
  old.num_epochs = 1
  runs = sweep.plan(old, grid, range(2))
  for run in runs[:3]:  # Three of four runs trained before, with 1 epoch.
    (tmp_path / run.name).mkdir()
    (tmp_path / run.name / 'config.json').write_text(
        json.dumps(run.config(old).to_dict(), default=list))
    (tmp_path / run.name / 'metrics.json').write_text('{"completed": true, "history": [{}]}')
  new = default.get_config()
  new.update(num_epochs=2, log_every_steps=7)  # log_every_steps does not change results.
  trained = []
  monkeypatch.setattr(sweep, '_train_runs', lambda base, group, workdir, notify, kept: [
      trained.extend(r.name for r in group) or ('trained', '') for _ in group])
  with pytest.raises(errors.ConfigError,
                     match=r': 3 of 4 runs were trained with another config \(num_epochs: 1 '
                           r'there, 2 now\); use another --workdir, or pass --restart_changed'):
    sweep.run_sweep('t', new, grid, {}, range(2), tmp_path)
  assert not (tmp_path / sweep.SWEEP_FILE).exists() and not trained  # Nothing written.
  # The same config again: nothing to refuse, finished runs skipped.
  outcomes = sweep.run_sweep('t', old, grid, {}, range(2), tmp_path)
  assert [o.status for o in outcomes] == ['skipped'] * 3 + ['trained']
  trained.clear()
  outcomes = sweep.run_sweep('t', new, grid, {}, range(2), tmp_path, restart_changed=True)
  assert sorted(trained) == sorted(r.name for r in runs)  # The 3 changed ones and the new.
  assert not (tmp_path / runs[0].name / 'metrics.json').exists()
  assert json.loads((tmp_path / sweep.SWEEP_FILE).read_text())['base_config']['num_epochs'] == 2


@pytest.mark.parametrize('name', ['study', 'study_long'])
def test_the_study_configs_name_real_sweeps_and_the_long_one_is_long(name, repo_root,
                                                                      monkeypatch):
  monkeypatch.chdir(repo_root)
  declared = study.load_study(f'configs/{name}.py')
  _, module = sweep.load_config_module(f'configs/{name}.py')
  assert [s.name for s in declared.sweeps] == list(module.SWEEPS)
  assert [c.text for c in declared.claims] == [c['claim'] for c in module.CLAIMS]
  short = {s.name: s.base for s in study.load_study('configs/study.py').sweeps}
  for s in declared.sweeps:
    options.validate_config(s.base.to_dict())
    # The learning rate: shared by every arm (small data) or tuned per configuration.
    assert (s.search and s.search.field == 'learning_rate') != bool(s.strata)
    if s.base.max_train_examples:  # Small data: shared rates, a split per seed.
      assert list(s.strata) == ['learning_rate'] and s.base.split_seed == 'seed'
      assert s.seeds >= 10
    if name == 'study_long':  # ≥ 10 seeds, 3× the epochs, stopped on validation.
      own = sweep.load_config_module(f'configs/{s.name}.py')[1].get_config()
      assert s.seeds >= 10 and s.base.early_stopping_patience > 0
      assert s.base.num_epochs == 3 * own.num_epochs
      assert s.base.early_stopping_min_epochs >= 2 * own.num_epochs
      if s.name in short:
        assert short[s.name].num_epochs == own.num_epochs
  # The regimes: small data where dropout claims can show, all data for accuracy.
  assert short['dropout_sweep'].max_train_examples == 2000
  if name == 'study_long':
    long = {s.name: s.base for s in declared.sweeps}
    assert long['mlp_vs_cnn'].max_train_examples == 0
    assert long['mlp_vs_cnn'].shift_curve_pixels == 4


@pytest.mark.parametrize('claim_sweep, contrast, words', [
    ('padding_sweep', "[(1, {'padding': 1}), (-1, {'padding': 2})]",
     "CLAIMS entry 'c': {'padding': 2} is not in the GRID of padding_sweep"),
    ('pooling_sweep', "[(1, {'padding': 1}), (-1, {'padding': 0})]",
     "CLAIMS entry 'c': sweep='pooling_sweep' is not in SWEEPS: expected one of "
     'padding_sweep'),
])
def test_a_claim_off_the_studys_grids_stops_the_study_before_any_run(
    tmp_path, claim_sweep, contrast, words):
  (tmp_path / 'padding_sweep.py').write_text(
      "from configs import default\nGRID = [{'padding': 0}, {'padding': 1}]\n"
      'def get_config():\n  return default.get_config()\n')
  (tmp_path / 'study.py').write_text(
      "from configs import default\nSWEEPS = ('padding_sweep',)\n"
      f"CLAIMS = [dict(claim='c', sweep='{claim_sweep}', contrast={contrast}, "
      "metric='test_accuracy', expect='higher', effect=0.002, family='f')]\n"
      'def get_config():\n  return default.get_config()\n')
  with pytest.raises(errors.ConfigError, match=re.escape(words)):
    study.load_study(str(tmp_path / 'study.py'))


def _two_sweep_study(tmp_path, sweep_seeds):
  for name, grid in (('padding_sweep', "[{'padding': 0}, {'padding': 1}]"),
                     ('pooling_sweep', "[{'pooling': 'max'}, {'pooling': 'avg'}]")):
    (tmp_path / f'{name}.py').write_text(
        f'from configs import default\nGRID = {grid}\n'
        'def get_config():\n  return default.get_config()\n')
  (tmp_path / 'study.py').write_text(
      "from configs import default\nSWEEPS = ('padding_sweep', 'pooling_sweep')\n"
      f'SEEDS = 3\nSWEEP_SEEDS = {sweep_seeds}\n'
      'def get_config():\n  return default.get_config()\n')
  return str(tmp_path / 'study.py')


def test_a_sweep_declared_with_its_own_seeds_plans_them_unless_the_flag_says(tmp_path):
  declared = study.load_study(_two_sweep_study(tmp_path, "{'pooling_sweep': 2}"))
  plans = study.plan_sweeps(declared.sweeps, tmp_path / 'runs')
  assert [(p.name, list(p.seeds)) for p in plans] == [('padding_sweep', [0, 1, 2]),
                                                       ('pooling_sweep', [0, 1])]
  assert sorted({r.seed for r in plans[1].runs}) == [0, 1] and len(plans[1].runs) == 4
  assert [list(p.seeds) for p in study.plan_sweeps(declared.sweeps, tmp_path, 1)] == [[0], [0]]


@pytest.mark.parametrize('sweep_seeds, words', [
    ("{'pool_sweep': 2}", "SWEEP_SEEDS['pool_sweep']=2 is invalid"),
    ("{'pooling_sweep': True}", "SWEEP_SEEDS['pooling_sweep']=True is invalid"),
    ('[2]', 'SWEEP_SEEDS=[2] is invalid: expected a dict {sweep: seeds}'),
    ("{'pooling_sweep': 0}", "SWEEP_SEEDS['pooling_sweep']=0 is invalid: expected a sweep "
     'of SWEEPS and an integer >= 1'),
])
def test_sweep_seeds_off_the_study_stop_it_before_any_run(tmp_path, sweep_seeds, words):
  with pytest.raises(errors.ConfigError, match=re.escape(words)):
    study.load_study(_two_sweep_study(tmp_path, sweep_seeds))


def test_the_study_estimates_its_time_from_the_benchmark(repo_root, tmp_path):
  done = subprocess.run([sys.executable, '-m', 'experiments.study', '--estimate',
                         f'--workdir={tmp_path}', '--examples_per_second=55000'],
                        cwd=repo_root, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  # configs/study.py: 8 distinct configurations × 2 shared rates × 10 seeds on 2,000
  # images for 10 epochs.
  assert done.stdout.startswith('160 distinct runs (10 seeds), 1600 epochs left to train')
  assert '3,200,000 images at 55,000 ex/s (--examples_per_second); ≈ ' in done.stdout
  # Every part priced: 1,600 epochs of 15 whole batches of 128 (3,072,000 images) at
  # 55,000 ex/s are 0.9 min of training.
  assert re.search(r'min in all: training 0\.9, evaluation [\d.]+, runs [\d.]+, set-ups '
                   r'[\d.]+, tuning 0\.0, start [\d.]+ min', done.stdout), done.stdout


def test_the_sweep_entry_point_is_named_by_its_config_file(capsys):
  from experiments import sweep_cli  # pylint: disable=g-import-not-at-top
  assert sweep_cli.name_from_argv(['x', '--config=configs/dropout_sweep.py']) == (
      'dropout_sweep')
  assert sweep_cli.name_from_argv(['x', '--seeds=2', '--config', 'my/pool_sweep.py:1',
                                   '--config.num_epochs=3']) == 'pool_sweep'
  assert sweep_cli.name_from_argv(['x', '--help']) == 'dropout_sweep'  # Lists the flags.
  with pytest.raises(SystemExit) as e:
    sweep_cli.name_from_argv(['x', '--seeds=2'])
  assert e.value.code == 2
  assert capsys.readouterr().err.startswith('error: --config is required')


def test_a_shard_waits_for_sweep_json_within_a_bound(tmp_path, monkeypatch):
  monkeypatch.setattr(sweep, 'SWEEP_FILE_WAIT_SECONDS', 0.2)
  with filelock.FileLock(tmp_path / f'.{sweep.SWEEP_FILE}.lock'):  # Another shard's.
    with pytest.raises(errors.RunLockedError, match=r'\.sweep\.json\.lock is still held by '
                                                    'another process after 0.2 s'):
      sweep.run_sweep('t', default.get_config(), [{'padding': 0}], {}, range(1), tmp_path)
  assert not (tmp_path / sweep.SWEEP_FILE).exists()
