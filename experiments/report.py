r"""Rebuilds REPORT.md and every sweep's page and figure from the raw data alone:
python -m experiments.report [--output_dir=results] [--workdir=runs/study]

Reads each sweep's runs.csv and sweep.json in --output_dir (results/ ships them); with
--workdir, first exports them there from the sweeps trained under it (their run
directories). The formulas describe the network the runs trained (their sweep.json's
base config), or --config's where there are none.
"""

import json
import pathlib

from absl import flags
from ml_collections import config_flags

from cnn_jax import options, report, results, study, sweep
from configs import learning_curve as curve_config
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('output_dir', 'results', 'Where each sweep\'s raw data is read, and '
                    'REPORT.md and the pages written.')
flags.DEFINE_string('workdir', '', 'Sweeps\' workdirs to export the raw data from '
                    'first (e.g. runs/study); empty: the raw data already in --output_dir.')
flags.DEFINE_string('readme', '', 'A README whose study section (between its '
                    '<!-- study --> markers) gets the report\'s claims table.')
flags.DEFINE_string('planned', '', 'A study config (e.g. configs/study_long.py): write '
                    '--output_dir/planned_power.md, the power its seeds give each claim it '
                    'has beyond --config\'s, from the spread of the earlier runs in '
                    '--output_dir, and exit.')
cli.define_config('configs/study.py', 'The study config: its SWEEPS and CLAIMS, and the '
                  'network the formulas describe where no sweep ran.')


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  output = pathlib.Path(FLAGS.output_dir)
  if FLAGS.workdir:
    for meta in sorted(pathlib.Path(FLAGS.workdir).glob(f'*/{sweep.SWEEP_FILE}')):
      results.export(meta.parent, output / meta.parent.name)
  # The formulas describe the network the runs trained: their base config.
  trained = sorted(output.glob(f'*/{sweep.SWEEP_FILE}'))
  base = options.with_defaults(json.loads(trained[0].read_text())['base_config']
                               if trained else FLAGS.config.to_dict())
  declared = study.load_study(config_flags.get_config_filename(FLAGS['config']))
  if FLAGS.planned:
    long = study.load_study(FLAGS.planned)
    done = {c.text for c in declared.claims}
    table = '\n'.join(report.planned_power([c for c in long.claims if c.text not in done],
                                            long.seeds, output))
    (output / report.PLANNED_POWER).write_text(
        f'# The power {FLAGS.planned} would have on the claims it adds\n\n'
        f'Written by `python -m experiments.report --planned={FLAGS.planned}` from the '
        f'earlier runs in {output}/<sweep>/runs.csv.\n\n{table}\n')
    print(table)
    return
  print(report.write_report(output, output, report.rebuild_command(output), base,
                            [s.name for s in declared.sweeps], declared.claims,
                            curve_config.EFFECTS))
  if FLAGS.readme:
    report.update_readme(FLAGS.readme, output)


if __name__ == '__main__':
  cli.run(main)
