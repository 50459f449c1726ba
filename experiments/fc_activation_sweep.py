"""An activation between FC1 and FC2? The article's table has none (FC2·FC1 is then a
single affine map); its text recommends ReLU between FC layers.

python -m experiments.fc_activation_sweep --workdir=runs/fc_activation_sweep --seeds=5 [--config.num_epochs=...]
The grid is declared in configs/fc_activation_sweep.py.
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('fc_activation_sweep')
