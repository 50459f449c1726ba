"""Padding 1 keeps 28×28 through conv1 (the article's choice); padding 0 shrinks each

python -m experiments.padding_sweep --workdir=runs/padding_sweep --seeds=3 [--config.num_epochs=...]
The grid is declared in configs/padding_sweep.py; see experiments/sweep_cli.py for the flags.
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('padding_sweep')
