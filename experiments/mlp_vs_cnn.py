"""CNN vs ANN: the article's CNN against the MLP baseline on the same recipe.

python -m experiments.mlp_vs_cnn --workdir=runs/mlp_vs_cnn --seeds=5 [--config.num_epochs=...]
The grid is declared in configs/mlp_vs_cnn.py.
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('mlp_vs_cnn')
