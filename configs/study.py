"""The whole study (python -m experiments.study): every sweep of the article on one base
config, SEEDS seeds per configuration, then REPORT.md.

The default recipe, trained for 1 epoch (its cosine schedule ends at 0 there): 12
distinct configurations × 5 seeds, about 50 minutes on a 2-core CPU (README, "The
study"). Overrides apply to every sweep: --config.num_epochs=2 for the README's main
job recipe, --seeds=10 for narrower intervals.
"""

from configs import default

# configs/<name>.py for each, run in this order.
SWEEPS = ('dropout_sweep', 'padding_sweep', 'pooling_sweep', 'activation_sweep',
          'mlp_vs_cnn')
SEEDS = 5


def get_config():
  config = default.get_config()
  config.num_epochs = 1
  return config
