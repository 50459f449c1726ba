"""`Conv2D`: what `nn.Conv` computes, with the same parameters, faster on CPU where the
input has few channels.

Why: for the article's conv1 (1 input channel) XLA:CPU's kernel gradient is a slow
convolution with a 28×28 window; written as patches @ kernel (im2col), the forward pass
and autodiff's kernel gradient are two thin matmuls (docs/speed.md). With many input
channels (conv2) XLA's convolution is already at matmul speed and the patches would
cost k² times the input's memory, so those stay `lax.conv_general_dilated`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax import geometry

# Patch length (kernel height × width × input channels) up to which im2col is used.
IM2COL_MAX_PATCH = 32


def patches(x: jax.Array, kernel_size: int, stride: int, padding: int) -> jax.Array:
  """NHWC `x` → (N, out_h, out_w, kernel_size² · C): each output position's receptive
  field, rows then columns then channels (the order of an HWIO kernel's first 3 axes)."""
  n, h, w, c = x.shape
  # Rounding down, like lax.conv_general_dilated (and nn.Conv).
  out_h = geometry.output_size(h, kernel_size, stride, padding, floor=True)
  out_w = geometry.output_size(w, kernel_size, stride, padding, floor=True)
  x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  views = [lax.slice(x, (0, i, j, 0),
                     (n, i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, c),
                     (1, stride, stride, 1))
           for i in range(kernel_size) for j in range(kernel_size)]
  return jnp.stack(views, axis=3).reshape(n, out_h, out_w, kernel_size ** 2 * c)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
  """NHWC `x` convolved (cross-correlated, as in every DL framework) with a square HWIO
  `kernel`, the same stride and zero padding on both axes."""
  kernel_size, _, channels, features = kernel.shape
  if kernel_size ** 2 * channels <= IM2COL_MAX_PATCH:
    return patches(x, kernel_size, stride, padding) @ kernel.reshape(-1, features)
  return lax.conv_general_dilated(x, kernel, (stride, stride), ((padding, padding),) * 2,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


class Conv2D(nn.Module):
  """`nn.Conv(features, (k, k), strides=s, padding=((p, p), (p, p)))`: same parameter
  names, shapes and initializers (so init values and checkpoints are interchangeable),
  same outputs and gradients up to float rounding."""
  features: int
  kernel_size: int = 3
  stride: int = 1
  padding: int = 0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
    return conv2d(x, kernel, self.stride, self.padding) + bias
