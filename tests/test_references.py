"""What the model and a training step compute, against references written here without
the code under test: a NumPy forward pass for each model option, each optimizer's update
by its formula, dropout keyed by (seed, epoch, step), the schedules."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from cnn_jax import models, steps

_train_step = jax.jit(steps.train_step)


def _conv(x, kernel, bias, stride, pad):
  """Cross-correlation of NHWC x with an HWIO kernel, by summing shifted slices."""
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  k = kernel.shape[0]
  oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
  out = np.zeros((x.shape[0], oh, ow, kernel.shape[3]))
  for i in range(k):
    for j in range(k):
      window = x[:, i:i + (oh - 1) * stride + 1:stride, j:j + (ow - 1) * stride + 1:stride]
      out += window @ kernel[i, j]
  return out + bias


def _pool(x, kind, window, stride):
  oh, ow = (x.shape[1] - window) // stride + 1, (x.shape[2] - window) // stride + 1
  out = np.empty((x.shape[0], oh, ow, x.shape[3]))
  for a in range(oh):
    for b in range(ow):
      cell = x[:, a * stride:a * stride + window, b * stride:b * stride + window]
      out[:, a, b] = cell.max(axis=(1, 2)) if kind == 'max' else cell.mean(axis=(1, 2))
  return out


def _activation(name, slope):
  return {'relu': lambda x: np.maximum(x, 0.0),
          'leaky_relu': lambda x: np.where(x > 0, x, slope * x),
          'tanh': np.tanh,
          'sigmoid': lambda x: 1.0 / (1.0 + np.exp(-x))}[name]


def _forward(config, params, pixels):
  """The network the config describes, in float64 NumPy, from uint8 pixels."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  x = pixels.astype(np.float64) / 255.0
  act = _activation(config['activation'], config['leaky_relu_slope'])
  if config['model'] == 'cnn':
    for i in range(1, len(config['conv_features']) + 1):
      x = _conv(x, p[f'conv{i}']['kernel'], p[f'conv{i}']['bias'],
                config['conv_stride'], config['padding'])
      x = _pool(act(x), config['pooling'], config['pool_window'], config['pool_stride'])
    hidden_act = (None if config['fc_activation'] == 'none'
                  else _activation(config['fc_activation'], config['leaky_relu_slope']))
  else:
    hidden_act = act
  x = x.reshape(len(x), -1)
  layers = sorted((k for k in p if k.startswith('fc')), key=lambda k: int(k[2:]))
  for n, name in enumerate(layers, start=1):
    x = x @ p[name]['kernel'] + p[name]['bias']
    if n < len(layers) and hidden_act is not None:
      x = hidden_act(x)
  return x


def _pixels(n=3, shape=(28, 28, 1), seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


@pytest.mark.parametrize('overrides', [
    {},  # The article's network.
    {'padding': 0},
    {'pooling': 'avg'},
    {'pool_window': 3, 'pool_stride': 2},
    {'pool_window': 3, 'pool_stride': 2, 'pooling': 'avg'},
    {'activation': 'leaky_relu', 'leaky_relu_slope': 0.2},
    {'activation': 'tanh'},
    {'activation': 'sigmoid'},
    {'fc_activation': 'relu'},
    {'kernel_size': 5, 'padding': 2, 'conv_features': (4, 6), 'fc_features': 16},
    {'conv_stride': 2, 'padding': 1, 'conv_features': (4,)},
    {'dropout_placement': 'both', 'dropout_rate': 0.5},  # Evaluation: no dropout.
    {'model': 'mlp', 'mlp_hidden_features': (64, 32), 'activation': 'tanh'},
    {'model': 'mlp', 'mlp_hidden_features': ()},
])
def test_the_forward_pass_equals_a_numpy_reference(overrides):
  config = default.get_config().to_dict()
  config.update(overrides)
  model = models.create_model(config, 10)
  pixels = _pixels()
  # Jitted throughout: op-by-op dispatch compiles every op on its own (seconds).
  params = jax.jit(model.init)(jax.random.key(3), jnp.zeros((1, 28, 28, 1)))['params']
  # Larger biases than the zero init, so a missing bias or activation shows.
  params = jax.tree.map(lambda a: a + 0.05 * np.sin(np.arange(a.size).reshape(a.shape)),
                        params)
  logits = jax.jit(lambda p, x: model.apply({'params': p}, steps.preprocess(x)))(
      params, pixels)
  np.testing.assert_allclose(logits, _forward(config, params, pixels), rtol=2e-4,
                             atol=2e-4)


def _cross_entropy(logits, labels):
  logits = logits - logits.max(-1, keepdims=True)
  log_p = logits - jnp.log(jnp.exp(logits).sum(-1, keepdims=True))
  return -jnp.take_along_axis(log_p, labels[:, None], -1).mean()


def _setup(**overrides):
  config = default.get_config().to_dict()
  config.update(conv_features=(4, 8), fc_features=16, dropout_rate=0.5,
                lr_schedule='constant', warmup_epochs=0.0, learning_rate=0.1, **overrides)
  model = models.create_model(config, 10)
  tx, _ = steps.create_optimizer(config, steps_per_epoch=10)
  state = steps.create_train_state(jax.random.key(0), model, (28, 28, 1), tx)
  return config, model, state


def _reference_loss_and_grads(model, params, pixels, labels, rng):
  """Loss and gradients of the dropout network, written without `steps`."""
  x = jnp.asarray(pixels, jnp.float32) / 255.0
  def loss(p):
    return _cross_entropy(model.apply({'params': p}, x, train=True,
                                      rngs={'dropout': rng}), labels)
  return jax.jit(jax.value_and_grad(loss))(params)


def _batch(seed=1):
  pixels = _pixels(8, seed=seed)
  return pixels, jnp.asarray(np.arange(8) % 10, jnp.int32)


def test_a_train_step_trains_with_dropout_on_scaled_inputs():
  _, model, state = _setup(optimizer='sgd', momentum=0.0)
  pixels, labels = _batch()
  rng = steps.step_rng(0, 1, 0)
  _, metrics = _train_step(state, (pixels, labels), rng)
  loss, _ = _reference_loss_and_grads(model, state.params, pixels, labels, rng)
  np.testing.assert_allclose(metrics['loss'], loss, rtol=1e-5)
  without_dropout = _cross_entropy(jax.jit(model.apply)({'params': state.params},
                                                       jnp.asarray(pixels) / 255.0), labels)
  assert abs(float(metrics['loss']) - float(without_dropout)) > 1e-4
  # Another step's key draws another dropout mask.
  _, other = _train_step(state, (pixels, labels), steps.step_rng(0, 1, 1))
  assert float(other['loss']) != float(metrics['loss'])


def _first_update(optimizer, **overrides):
  config, model, state = _setup(optimizer=optimizer, **overrides)
  pixels, labels = _batch()
  rng = steps.step_rng(0, 1, 0)
  new, _ = _train_step(state, (pixels, labels), rng)
  _, grads = _reference_loss_and_grads(model, state.params, pixels, labels, rng)
  return config, state, new, grads


@pytest.mark.parametrize('optimizer,overrides,rule', [
    ('sgd', {'momentum': 0.0}, lambda p, g, c: p - c['learning_rate'] * g),
    ('sgd', {'momentum': 0.9}, lambda p, g, c: p - c['learning_rate'] * g),
    ('sgd', {'momentum': 0.0, 'weight_decay': 0.1},
     lambda p, g, c: p - c['learning_rate'] * (g + c['weight_decay'] * p)),
    # Adam's first step: bias-corrected moments g and g², so lr · g / (|g| + ε).
    ('adam', {}, lambda p, g, c: p - c['learning_rate'] * g / (np.abs(g) + 1e-8)),
    ('adamw', {'weight_decay': 0.1}, lambda p, g, c: p - c['learning_rate'] * (
        g / (np.abs(g) + 1e-8) + c['weight_decay'] * p)),
])
def test_each_optimizers_first_update_follows_its_formula(optimizer, overrides, rule):
  config, state, new, grads = _first_update(optimizer, **overrides)
  for path, p in jax.tree_util.tree_leaves_with_path(state.params):
    g = np.asarray(_at(grads, path), np.float64)
    expected = rule(np.asarray(p, np.float64), g, config)
    # Adam divides by |g|: where g is ~0 the float32 rounding decides, leave those out.
    keep = np.abs(g) > 1e-6 if optimizer.startswith('adam') else np.ones_like(g, bool)
    np.testing.assert_allclose(np.asarray(_at(new.params, path))[keep], expected[keep],
                               rtol=1e-4, atol=1e-6, err_msg=str(path))


def _at(tree, path):
  for key in path:
    tree = tree[key.key]
  return tree


def test_sgd_momentum_carries_the_previous_gradient():
  config, model, state = _setup(optimizer='sgd', momentum=0.9)
  batches = [_batch(1), _batch(2)]
  keys = [steps.step_rng(0, 1, 0), steps.step_rng(0, 1, 1)]
  _, g1 = _reference_loss_and_grads(model, state.params, *batches[0], keys[0])
  one, _ = _train_step(state, batches[0], keys[0])
  _, g2 = _reference_loss_and_grads(model, one.params, *batches[1], keys[1])
  two, _ = _train_step(one, batches[1], keys[1])
  expected = jax.tree.map(lambda p, a, b: p - config['learning_rate'] * (b + 0.9 * a),
                          one.params, g1, g2)
  for got, want in zip(jax.tree.leaves(two.params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_dropout_keys_and_epoch_orders_depend_on_seed_epoch_and_step_only():
  keys = {(s, e, t): tuple(np.asarray(jax.random.key_data(steps.step_rng(s, e, t))))
          for s in (0, 1) for e in (1, 2) for t in (0, 1, 7)}
  assert len(set(keys.values())) == len(keys)  # All different ...
  assert keys[(1, 2, 7)] == tuple(np.asarray(jax.random.key_data(steps.step_rng(1, 2, 7))))
  orders = {(s, e): np.asarray(steps.epoch_permutation(s, e, 50)) for s in (0, 1)
            for e in (1, 2)}
  for order in orders.values():
    np.testing.assert_array_equal(np.sort(order), np.arange(50))  # A permutation ...
  assert len({o.tobytes() for o in orders.values()}) == 4  # ... new each epoch and seed.
  np.testing.assert_array_equal(orders[(0, 2)], steps.epoch_permutation(0, 2, 50))


def test_schedules_follow_their_formulas():
  config = default.get_config().to_dict()
  config.update(learning_rate=0.5, warmup_epochs=1.0, num_epochs=4,
                lr_schedule='cosine')
  _, cosine = steps.create_optimizer(config, steps_per_epoch=10)  # 10 warm-up, 40 in all.
  for t in (0, 5, 10, 25, 39, 40):
    want = (0.5 * t / 10 if t < 10
            else 0.5 * 0.5 * (1 + math.cos(math.pi * (t - 10) / 30)))
    assert float(cosine(t)) == pytest.approx(want, abs=1e-6), t
  config['lr_schedule'] = 'constant'
  _, constant = steps.create_optimizer(config, steps_per_epoch=10)
  assert [float(constant(t)) for t in (0, 5, 10, 39)] == pytest.approx([0, 0.25, 0.5, 0.5])
