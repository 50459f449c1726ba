"""The article's CNN on MNIST, with the training recipe chosen by measurement.

Every field is documented in README.md; `cnn_jax.options.FIELDS` says what each allows.
Override on the command line: --config.dropout_placement=after_fc1 --config.num_epochs=3
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # Data: a TFDS image dataset; MNIST prepares offline from the files in data/mnist.
  config.dataset = 'mnist'
  config.data_dir = ml_collections.config_dict.placeholder(str)  # None: TFDS default.
  config.manual_dir = ml_collections.config_dict.placeholder(str)  # None: data/<dataset>.
  config.max_train_examples = 0  # 0: all. A slice for quick checks.
  config.max_test_examples = 0

  # The article's network (README's layer table).
  config.model = 'cnn'  # cnn | mlp
  config.conv_features = (32, 64)
  config.kernel_size = 3
  config.conv_stride = 1
  config.padding = 1
  config.activation = 'relu'  # relu | leaky_relu | tanh | sigmoid
  config.leaky_relu_slope = 0.01
  config.pooling = 'max'  # max | avg
  config.pool_window = 2
  config.pool_stride = 2
  config.fc_features = 128
  config.fc_activation = 'none'  # The article's table has none between FC1 and FC2.
  config.dropout_placement = 'before_fc1'  # none | before_fc1 | after_fc1 | both
  config.dropout_rate = 0.25
  config.mlp_hidden_features = (3136, 128)  # model=mlp only.

  # Training recipe.
  config.optimizer = 'adam'  # adam | adamw | sgd
  # Measured to reach 99% test accuracy soonest (issue 4): 99.05–99.12% after 2 epochs
  # over seeds; 1e-3 without warmup needed 2.35 epochs to reach 99%. 5 epochs: ~99.2%.
  config.learning_rate = 3e-3
  config.lr_schedule = 'cosine'  # constant | cosine (to 0 at the last step)
  config.warmup_epochs = 0.1
  config.momentum = 0.9  # sgd only.
  config.weight_decay = 0.0  # adamw (decoupled) and sgd (L2).
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 2
  config.seed = 0

  # Train steps per dispatch to the device (logging, SIGTERM and checkpoints act between
  # dispatches); results do not depend on it. auto: 1 on CPU, up to 128 (a divisor of
  # the epoch) on accelerators (cnn_jax/device_loop.py).
  config.steps_per_dispatch = 'auto'
  config.log_every_steps = 100
  config.checkpoints_to_keep = 3
  return config
