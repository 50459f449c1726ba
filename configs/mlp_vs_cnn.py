"""CNN vs ANN: the article's CNN against the MLP baseline on the same recipe.

The MLP flattens the image to 784 inputs, then dense layers `mlp_hidden_features`
(default 3136 → 128: as wide as the CNN's flatten, then the CNN's head) → 10.

python -m experiments.mlp_vs_cnn --workdir=runs/mlp_vs_cnn --seeds=5
"""

from configs import default

GRID = [{'model': 'cnn'}, {'model': 'mlp'}]
BASELINE = {'model': 'cnn'}


def get_config():
  return default.get_config()
