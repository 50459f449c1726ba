"""Padding 1 keeps 28×28 through conv1 (the article's choice); padding 0 shrinks each
conv's output by 2 (28 → 26), and FC1's input from 3136 to 1600.

python -m experiments.padding_sweep --workdir=runs/padding_sweep --seeds=5 [--config.num_epochs=...]
The grid is declared in configs/padding_sweep.py.
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('padding_sweep')
