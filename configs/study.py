"""The whole study (python -m experiments.study): every sweep of the article on one base
config, SEEDS seeds per configuration, comparisons paired by seed with a TOST margin of
EQUIVALENCE_MARGIN, then REPORT.md.

The default recipe for 1 epoch (its cosine schedule ends at 0 there), sized to finish
in about an hour on the 2-core CI machine (its measured time: README, The study).
Overrides apply to every sweep: --seeds=10, --config.num_epochs=2. The long profile
for an accelerator: configs/study_long.py.
"""

from configs import default

# configs/<name>.py for each, run in this order.
SWEEPS = ('dropout_sweep', 'dropout_rate_sweep', 'padding_sweep', 'pooling_sweep',
          'pool_size_sweep', 'activation_sweep', 'fc_activation_sweep', 'mlp_vs_cnn')
SEEDS = 6
EQUIVALENCE_MARGIN = 0.001  # ±0.10 pp of test accuracy.


def get_config():
  config = default.get_config()
  config.num_epochs = 1
  return config
