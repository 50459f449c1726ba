"""Any sweep, named by its config: python -m experiments.sweep --config=configs/<name>.py

The grid (GRID, BASELINE) and base config are declared in that file; the run
directory defaults to runs/<name>. `python -m experiments.<name>` is the same command
for the sweeps the repo ships. Flags: --workdir, --seeds, --shard=i/n, --vmap_seeds,
--restart_changed and any --config.<field>=...
"""

import sys

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main(sweep_cli.name_from_argv(sys.argv), 'experiments.sweep')
