r"""Checks the article's claims against the sweeps: python -m experiments.report

Reads every sweep under --workdir (default runs/: runs/dropout_sweep, runs/padding_sweep,
...), refreshes each sweep's results, and writes REPORT.md with the results files and
figures copied beside it in --output_dir (default results/, committed to the repo).
"""

from absl import flags

from cnn_jax import report
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'runs', 'The directory holding the sweeps\' workdirs.')
flags.DEFINE_string('output_dir', 'results', 'Where REPORT.md and the figures go.')


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  command = (f'python -m experiments.report --workdir={FLAGS.workdir} '
             f'--output_dir={FLAGS.output_dir}')
  print(report.write_report(FLAGS.workdir, FLAGS.output_dir, command))


if __name__ == '__main__':
  cli.run(main)
