"""Entry points: bad input ends in one `error:` line and exit status 2."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from configs import default
from cnn_jax import errors, inference, input_pipeline, options, train
from experiments import sweep_cli
from experiments import cli


@pytest.mark.parametrize('argv, message', [
    (['--config.dropot_rate=0.1'],
     '--config.dropot_rate is not a config field; did you mean --config.dropout_rate?'),
    (['--config.zzz=1'], '--config.zzz is not a config field (fields: activation, '),
    (['--config=configs/nope.py'], '--config=configs/nope.py: no such config file'),
    (['--config', 'configs/nope.py:x'], '--config=configs/nope.py:x: no such config file'),
])
def test_bad_config_arguments_are_named(argv, message, repo_root, monkeypatch):
  monkeypatch.chdir(repo_root)
  argv = cli._with_installed_config(argv)  # pylint: disable=protected-access
  assert cli.config_arg_error(argv, 'configs/default.py').startswith(message)


def test_good_config_arguments_pass(repo_root, monkeypatch):
  monkeypatch.chdir(repo_root)
  assert cli.config_arg_error(['--config=configs/dropout_sweep.py', '--config.padding=0',
                               '--workdir=x', '--config.conv_features=(8,16)'],
                              'configs/default.py') is None


def _train(repo_root, *args):
  return subprocess.run([sys.executable, '-m', 'experiments.train', *args], cwd=repo_root,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('args, message', [
    (['--workdir=w', '--config.dropot_rate=0.1'], 'error: --config.dropot_rate is not a '),
    (['--workdir='], 'error: --workdir is empty'),
    (['--workdir=README.md'], 'is a file: expected a directory'),
    (['--workdir=w', '--config.batch_size=1e3'],
     "error: config.batch_size='1e3' is invalid: expected an integer >= 1"),
    (['--workdir=w', '--config.dropout_rate', 'half'],
     "error: config.dropout_rate='half' is invalid: expected a number >= 0 and < 1"),
    (['--workdir=w', '--epochs=3'], "error: Unknown command line flag 'epochs'"),
])
def test_train_refuses_bad_input_in_one_line(args, message, repo_root, tmp_path):
  # In tmp_path, not the repo, should a case train after all.
  args = [a.replace('--workdir=w', f'--workdir={tmp_path / "w"}') for a in args]
  done = _train(repo_root, *args, f'--config.data_dir={tmp_path}')
  assert done.returncode == 2, done.stderr[-2000:]
  errors = [line for line in done.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
  assert 'Traceback' not in done.stderr


def test_a_slice_larger_than_the_split_is_named(small_config):
  config = dict(small_config.to_dict(), max_train_examples=10_000_000)
  with pytest.raises(errors.ConfigError,
                     match=r'^config.max_train_examples=10000000 is invalid: the train '
                           r'split of mnist has 59500 examples besides the 500 held out'):
    input_pipeline.load_dataset(config)


def test_a_read_only_workdir_is_named_before_any_data_is_loaded(tmp_path, monkeypatch):
  workdir = tmp_path / 'read_only'
  workdir.mkdir()
  # The tests run as root, which may write anywhere: the check is made to see what a
  # user would see.
  real_access = os.access
  monkeypatch.setattr(os, 'access', lambda path, mode, **kw: (
      False if pathlib.Path(path) == workdir and mode & os.W_OK
      else real_access(path, mode, **kw)))

  def load(config):
    raise AssertionError('the data was loaded first')
  monkeypatch.setattr(input_pipeline, 'load_dataset', load)
  config = default.get_config()
  config.data_dir = str(tmp_path / 'tfds')
  with pytest.raises(errors.ConfigError,
                     match=f'^workdir {workdir} cannot be written: Permission denied$'):
    train.train_and_evaluate(config, workdir)


def test_summarize_describes_the_runs_own_config(repo_root, tmp_path):
  config = default.get_config().to_dict()
  config.update(padding=0, dropout_placement='none')
  (tmp_path / 'config.json').write_text(json.dumps(config, default=list))
  done = subprocess.run([sys.executable, '-m', 'experiments.summarize',
                         f'--workdir={tmp_path}'], cwd=repo_root, capture_output=True,
                        text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert f'as {tmp_path / "config.json"} describes it' in done.stdout
  assert '| **total** | | | | **225,034** | **2,631,040** | |' in done.stdout  # Not --config's 421,642.
  assert 'Dropout' not in done.stdout and '| conv1 | Conv2D | 1→32, 3×3, s1, p0 |' in done.stdout
  assert 'none yet' in done.stdout  # Not trained: no metrics.json.


def _entry_points(repo_root):
  return sorted(p.stem for p in (repo_root / 'experiments').glob('*.py')
                if "if __name__ == '__main__':" in p.read_text())


def test_every_entry_points_help_lists_its_flags_and_config_fields_and_exits_0(repo_root):
  names = _entry_points(repo_root)
  assert {'train', 'dropout_sweep', 'predict', 'benchmark', 'report'} <= set(names)
  started = {name: subprocess.Popen(
      [sys.executable, '-X', 'importtime', '-m', f'experiments.{name}', '--help'],
      cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for name in names}
  for name, process in started.items():
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, (name, err[-2000:])
    if name != 'benchmark':  # Help without JAX's import (seconds); the benchmark is JAX.
      assert not re.search(r'\| +jax$', err, re.MULTILINE), name
    source = (repo_root / 'experiments' / f'{name}.py').read_text()
    if 'sweep_cli.main(' in source:
      source += (repo_root / 'experiments' / 'sweep_cli.py').read_text()
    for flag in re.findall(r"DEFINE_\w+\(\s*'(\w+)'", source):
      assert f'  --{flag}: ' in out, (name, flag)
    if 'define_config(' in source:  # Every field, as declared.
      for field, f in options.FIELDS.items():
        assert f'  --config.{field}: {f.help} ({f.allowed}; default {f.default!r})' in out
    assert out.splitlines()[0].strip(), name  # The module's docstring comes first.


def test_an_installed_cnn_jax_runs_from_any_directory(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  done = subprocess.run([sys.executable, '-X', 'importtime', '-m', 'experiments.summarize',
                         '--config=configs/padding_sweep.py', '--config.padding=0'],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert '| conv1 | Conv2D | 1→32, 3×3, s1, p0 |' in done.stdout
  # A command that reads no checkpoint does not import Orbax (half a second).
  assert not re.search(r'\| +orbax.checkpoint$', done.stderr, re.MULTILINE)


def test_predict_on_a_sweep_directory_lists_its_runs(tmp_path):
  for name in ('padding=0,seed=0', 'padding=1,seed=0'):
    (tmp_path / name).mkdir()
    (tmp_path / name / 'config.json').write_text('{}')
  with pytest.raises(errors.ConfigError,
                     match=r'is a sweep, not one run: pick one of its runs, .*<run>: '
                           r'padding=0,seed=0, padding=1,seed=0$'):
    inference.load_run(tmp_path)
  with pytest.raises(errors.ConfigError, match='holds no training run'):
    inference.load_run(tmp_path / 'padding=0,seed=0' / 'nothing')
