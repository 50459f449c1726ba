"""Max vs mean pooling, non-overlapping 2/2 windows (the article's) vs overlapping 3/2.

python -m experiments.pooling_sweep --workdir=runs/pooling_sweep --seeds=5 [--config.num_epochs=...]
The grid is declared in configs/pooling_sweep.py.
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('pooling_sweep')
