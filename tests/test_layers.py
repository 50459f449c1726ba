"""Conv2D against nn.Conv: parameters, outputs and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import layers


def _reference(features, kernel_size, stride, padding):
  return nn.Conv(features, (kernel_size, kernel_size), strides=stride,
                 padding=((padding, padding), (padding, padding)))


# Both code paths: im2col (patch of 1·k² or 3·k² ≤ 32 values) and lax.conv (32·9).
@pytest.mark.parametrize('shape,features,kernel_size,stride,padding', [
    ((2, 28, 28, 1), 32, 3, 1, 1),   # The article's conv1.
    ((2, 28, 28, 1), 8, 3, 1, 0),    # Its padding-0 variant.
    ((3, 11, 13, 3), 5, 3, 2, 1),    # Odd, non-square sizes, stride 2, 3 channels.
    ((2, 12, 12, 1), 4, 5, 3, 2),    # Stride that does not tile: rounds down.
    ((1, 9, 9, 2), 6, 4, 1, 0),      # Even kernel.
    ((2, 14, 14, 32), 64, 3, 1, 1),  # The article's conv2 (lax.conv path).
])
def test_matches_nn_conv(shape, features, kernel_size, stride, padding):
  x = jax.random.normal(jax.random.key(1), shape)
  ours = layers.Conv2D(features, kernel_size, stride, padding)
  theirs = _reference(features, kernel_size, stride, padding)
  # Jitted: op-by-op dispatch compiled each op on its own and took ~10 s per case.
  params = jax.jit(ours.init)(jax.random.key(0), x)
  reference_params = jax.jit(theirs.init)(jax.random.key(0), x)
  # Same tree and the same initial values: checkpoints and seeds carry over.
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, reference_params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params)):
    np.testing.assert_array_equal(a, b)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape),
                        params)  # Nonzero bias, so a dropped bias would show.
  y, y_ref = jax.jit(ours.apply)(params, x), jax.jit(theirs.apply)(params, x)
  assert y.shape == y_ref.shape
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)

  cotangent = jax.random.normal(jax.random.key(3), y.shape)
  loss = lambda module: lambda p, x: jnp.sum(module.apply(p, x) * cotangent)
  grads = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(params, x)
  reference_grads = jax.jit(jax.grad(loss(theirs), argnums=(0, 1)))(params, x)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(reference_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_patches_order_matches_hwio_kernel():
  # One 1-channel 3×3 image, no padding: the single patch is the image, row-major.
  x = jnp.arange(9.0).reshape(1, 3, 3, 1)
  np.testing.assert_array_equal(layers.patches(x, 3, 1, 0).reshape(-1), np.arange(9.0))
  # Padding 1: the top-left output's patch has zeros where the padding is.
  top_left = layers.patches(x, 3, 1, 1)[0, 0, 0]
  np.testing.assert_array_equal(top_left, [0, 0, 0, 0, 0, 1, 0, 3, 4])
