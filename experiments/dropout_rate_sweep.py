"""How much dropout? "Sparingly", typically 0.2–0.5: rate 0.25 (the article's) against
0.1 and 0.5, dropout before FC1 as in the article's table.

python -m experiments.dropout_rate_sweep --workdir=runs/dropout_rate_sweep --seeds=5 [--config.num_epochs=...]
The grid is declared in configs/dropout_rate_sweep.py.
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('dropout_rate_sweep')
