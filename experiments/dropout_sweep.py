"""Where does dropout belong? The article's CNN with dropout before FC1 (its table),
after FC1, both, or none.

python -m experiments.dropout_sweep --workdir=runs/dropout_sweep --seeds=5 [--config.num_epochs=...]
The grid is declared in configs/dropout_sweep.py.
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('dropout_sweep')
