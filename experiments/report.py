r"""Checks the article's claims against the sweeps: python -m experiments.report

Reads every sweep under --workdir (default runs/: runs/dropout_sweep, runs/padding_sweep,
...; the study's are in runs/study), refreshes each sweep's results, and writes REPORT.md with the results files and
figures copied beside it in --output_dir (default results/, committed to the repo).
"""

from absl import flags

from cnn_jax import provenance, report
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'runs', 'The directory holding the sweeps\' workdirs.')
flags.DEFINE_string('output_dir', 'results', 'Where REPORT.md and the figures go.')
flags.DEFINE_string('readme', '', 'A README whose study section (between its '
                    '<!-- study --> markers) gets the report\'s claims table.')
cli.define_config('configs/study.py', 'The study config, whose network the formulas '
                  'describe.')


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  command = provenance.command_line('experiments.report')
  print(report.write_report(FLAGS.workdir, FLAGS.output_dir, command,
                           FLAGS.config.to_dict()))
  if FLAGS.readme:
    report.update_readme(FLAGS.readme, FLAGS.output_dir)


if __name__ == '__main__':
  cli.run(main)
