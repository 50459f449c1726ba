"""The article's CNN on MNIST with the default recipe: every field at the default
`cnn_jax.options.FIELDS` declares (README, Options).

Override on the command line: --config.dropout_placement=after_fc1 --config.num_epochs=3
"""

from cnn_jax import options


def get_config():
  return options.default_config()
