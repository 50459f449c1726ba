"""Do pool windows larger than 3 hurt? Max pooling with stride 2 and windows 2 (the
article's), 4 and 5 (which also shrink pool2 and FC1's input).

python -m experiments.pool_size_sweep --workdir=runs/pool_size_sweep --seeds=5 [--config.num_epochs=...]
The grid is declared in configs/pool_size_sweep.py.
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('pool_size_sweep')
