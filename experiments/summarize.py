r"""Prints the article-style layer table: python -m experiments.summarize --config=…

Shapes, parameters and receptive fields come from the geometry formulas, for the
dataset's input shape; nothing is trained or compiled. With --workdir=RUN the table
describes that run (its config.json, not --config) and its results follow, from its
metrics.json (the README's results table).
"""

import json
import pathlib

from absl import flags

from cnn_jax import errors, geometry, input_pipeline, options, provenance
from experiments import cli

FLAGS = flags.FLAGS
cli.define_config('configs/default.py', 'Model config file.')
flags.DEFINE_string('workdir', None, 'A training run: its own config.json is described '
                    '(instead of --config) and its results printed.')


def results_table(workdir: str) -> str:
  """The run's final figures as a Markdown table."""
  metrics = json.loads((pathlib.Path(workdir) / 'metrics.json').read_text())
  final = metrics['final']
  train_examples = sum(r['examples_per_second'] * r['train_seconds']
                       for r in metrics['history'])
  best = metrics['history'][metrics['best_epoch'] - 1]
  rows = [
      ('test accuracy at the best validation epoch (epoch)',
       f"{100 * best['test_accuracy']:.2f}% ({metrics['best_epoch']})"),
      ('validation accuracy there', f"{100 * best['validation_accuracy']:.2f}%"),
      ('train accuracy there, eval mode (generalisation gap)',
       f"{100 * best['train_eval_accuracy']:.2f}% "
       f"({100 * best['generalization_gap']:+.2f} pp)"),
      *([('test accuracy (final epoch)', f"{100 * final['test_accuracy']:.2f}%")]
        if 'test_accuracy' in final else []),  # Measured every epoch: test_every_epoch.
      ('epochs', str(final['epoch'])),
      ('parameters', f"{metrics['num_params']:,}"),
      ('training time (all epochs, compile excluded)', f"{metrics['train_seconds']:.0f} s"),
      ('examples/s (training)', f"{train_examples / metrics['train_seconds']:,.0f}"),
      ('compile time of the train step', f"{metrics['compile_seconds']:.1f} s"),
      ('wall time of the last process (data, compile, eval included)',
       f"{metrics['wall_seconds_this_process']:.0f} s"),
      ('machine', f"{metrics['device']} ({metrics['host']})"),
      ('code version that trained it', f"`{metrics.get('code_version', 'unknown')}`"),
      ('packages that trained it', metrics.get('packages', 'unknown')),
  ]
  return '\n'.join(['| figure | value |', '|---|---|'] +
                   [f'| {name} | {value} |' for name, value in rows])


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  cfg, source = FLAGS.config.to_dict(), f'--config={FLAGS["config"].config_filename}'
  if FLAGS.workdir:
    path = pathlib.Path(FLAGS.workdir) / 'config.json'
    try:
      cfg = {**cfg, **json.loads(path.read_text())}
    except (OSError, ValueError) as e:
      raise errors.ConfigError(f'--workdir={FLAGS.workdir} holds no readable training '
                                f'run ({path}: {getattr(e, "strerror", None) or e})') from None
    source = str(path)
  options.validate_config(cfg)
  spec = input_pipeline.dataset_spec(cfg)
  table = options.validate_geometry(cfg, spec.input_shape, spec.num_classes)
  print(f'{cfg["model"]} on {spec.name} '
        f'({"×".join(map(str, spec.input_shape))}, {spec.num_classes} classes), '
        f'as {source} describes it\n')
  print(geometry.format_layer_table(table))
  if FLAGS.workdir:
    print(f'\nResults of {FLAGS.workdir}:\n')
    try:
      print(results_table(FLAGS.workdir))
    except (OSError, ValueError, KeyError):
      print('none yet (no finished epoch in metrics.json)')
  print(f'\n{provenance.footer(provenance.command_line("experiments.summarize"))}')


if __name__ == '__main__':
  cli.run(main)
