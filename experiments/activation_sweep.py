"""The conv layers' activation: ReLU (the article's), Leaky ReLU, tanh, sigmoid.

python -m experiments.activation_sweep --workdir=runs/activation_sweep --seeds=5 [--config.num_epochs=...]
The grid is declared in configs/activation_sweep.py.
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('activation_sweep')
