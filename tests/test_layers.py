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

  # One compiled program per case: compiling was nearly all of this test's time.
  @jax.jit
  def both(x):
    initial = [m.init(jax.random.key(0), x) for m in (ours, theirs)]
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape),
                          initial[0])  # Nonzero bias, so a dropped bias would show.
    outputs = [m.apply(params, x) for m in (ours, theirs)]
    cotangent = jax.random.normal(jax.random.key(3), outputs[1].shape)
    grads = [jax.grad(lambda p, x, m=m: jnp.sum(m.apply(p, x) * cotangent),
                      argnums=(0, 1))(params, x) for m in (ours, theirs)]
    return initial, outputs, grads

  (params, reference_params), (y, y_ref), (grads, reference_grads) = both(x)
  # Same tree and the same initial values: checkpoints and seeds carry over.
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, reference_params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params)):
    np.testing.assert_array_equal(a, b)
  assert y.shape == y_ref.shape
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  assert jax.tree.structure(grads) == jax.tree.structure(reference_grads)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(reference_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_patches_order_matches_hwio_kernel():
  # One 1-channel 3×3 image, no padding: the single patch is the image, row-major.
  x = jnp.arange(9.0).reshape(1, 3, 3, 1)
  np.testing.assert_array_equal(layers.patches(x, 3, 1, 0).reshape(-1), np.arange(9.0))
  # Padding 1: the top-left output's patch has zeros where the padding is.
  top_left = layers.patches(x, 3, 1, 1)[0, 0, 0]
  np.testing.assert_array_equal(top_left, [0, 0, 0, 0, 0, 1, 0, 3, 4])
