"""The sweep's progress display (experiments.sweep_cli.Progress), on a terminal and in a
log file, fed the events `sweep.run_sweep` sends."""

import io

from cnn_jax import sweep
from experiments import sweep_cli


class Terminal(io.StringIO):
  def isatty(self):
    return True


def _feed(progress):
  runs = [sweep.Run(0, {'padding': p}, s) for p in (0, 1) for s in (0, 1)]
  progress('start', {'runs': runs, 'pending': runs[1:], 'num_epochs': 2,
                     'epochs_done': {runs[1].name: 1, runs[2].name: 0, runs[3].name: 0}})
  progress('epoch', {'run': runs[1].name, 'epoch': 2, 'num_epochs': 2,
                     'validation_accuracy': 0.9876})
  progress('run', sweep.Outcome(runs[1], 'trained'))
  progress('epoch', {'run': runs[2].name, 'epoch': 1, 'num_epochs': 2,
                     'validation_accuracy': 0.5})
  progress.close()


def test_a_log_file_gets_one_line_per_epoch_and_run_with_the_epochs_left():
  stream = io.StringIO()
  _feed(sweep_cli.Progress(stream))
  lines = stream.getvalue().splitlines()
  assert len(lines) == 4 and '\r' not in stream.getvalue() and '\x1b' not in lines[0]
  assert lines[0].startswith('[1/4 runs] 0/5 epochs')  # 1 + 2 + 2 epochs left.
  assert 'padding=0,seed=1: epoch 2/2 validation accuracy 98.76%' in lines[1]
  assert lines[2].startswith('[2/4 runs] 1/5 epochs') and 'eta' in lines[2]
  assert lines[2].endswith('padding=0,seed=1: trained')


def test_a_terminal_gets_one_bar_in_epochs_with_the_latest_accuracy():
  stream = Terminal()
  _feed(sweep_cli.Progress(stream))
  text = stream.getvalue()
  assert '4 runs, 1 already finished; training 3\n' in text
  assert 'padding=0,seed=1: trained\n' in text
  assert '2/5 [' in text and ('epoch/s' in text or 's/epoch' in text)
  assert '2/4 runs; padding=1,seed=0: epoch 1/2 validation accuracy 50.00%' in text


def test_a_study_names_its_total_once_for_several_sweeps():
  stream = io.StringIO()
  progress = sweep_cli.Progress(stream, total_epochs=9)
  _feed(progress)
  assert '[1/4 runs] 0/9 epochs' in stream.getvalue()


def test_a_studys_tuning_runs_add_to_its_totals_as_the_search_finds_them():
  stream = io.StringIO()
  progress = sweep_cli.Progress(stream, total_epochs=9, total_runs=4)
  tuning = [sweep.Run(i, {'learning_rate': lr}, 0) for i, lr in enumerate((1e-3, 1e-2))]
  progress('start', {'runs': tuning, 'pending': tuning, 'num_epochs': 3, 'tuning': True,
                     'epochs_done': {r.name: 0 for r in tuning}})
  for epoch in range(1, 4):
    progress('epoch', {'run': tuning[0].name, 'epoch': epoch, 'num_epochs': 3,
                       'validation_accuracy': 0.5})
  progress('run', sweep.Outcome(tuning[0], 'trained'))
  assert stream.getvalue().splitlines()[-1].startswith('[1/6 runs] 3/15 epochs')
