"""What the network learned, as arrays and figures: conv1's filters, feature maps,
receptive fields (computed and measured by gradients), the confusion matrix, and the
most confident mistakes.
"""

from __future__ import annotations

import functools
import io
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import geometry, models


def spatial_layers(table: Sequence[geometry.Layer]) -> list[geometry.Layer]:
  """The layers with a receptive field (conv, BatchNorm, activation, pool), in order."""
  return [r for r in table if r.receptive_field is not None and r.name != 'input']


def feature_map_captions(layers: Sequence[geometry.Layer]) -> list[tuple[str, str]]:
  """(name, caption) of each spatial layer: a conv's maps are its outputs before the
  activation that follows it, an activation's after it."""
  captions = []
  for row, after in zip(layers, [*layers[1:], None]):
    if row.kind == 'Conv2D':
      captions.append((row.name, f'{row.name}: before {after.details}'
                       if after and after.kind == 'Activation' else f'{row.name}: output'))
    elif row.kind == 'Activation':
      captions.append((row.name, f'{row.name}: after {row.details}'))
    else:
      captions.append((row.name, f'{row.name}: {row.kind} {row.details}'))
  return captions


def computed_field(row: geometry.Layer, i: int, j: int, input_hw: tuple[int, int]
                   ) -> np.ndarray:
  """Boolean input mask of unit (i, j) of `row`, from the geometry formulas."""
  (top, bottom), (left, right) = (row.receptive_field.region(i, input_hw[0]),
                                  row.receptive_field.region(j, input_hw[1]))
  mask = np.zeros(input_hw, bool)
  mask[top:bottom, left:right] = True
  return mask


def gradient_field(model: nn.Module, variables: Any, layer: str, i: int, j: int,
                   input_shape: Sequence[int], num_inputs: int = 8, seed: int = 0
                   ) -> np.ndarray:
  """Boolean input mask where unit (i, j) of `layer` (all channels) has a non-zero
  gradient, over random inputs: the receptive field the network really has.

  Several random inputs, because one input can hide pixels: a ReLU that is off, or a
  max-pool that picks another pixel of its window, gives them zero gradient.
  """
  x = np.random.default_rng(seed).standard_normal((num_inputs, *input_shape),
                                                  np.float32)
  grad = _unit_gradient(model, layer)(variables, x, i, j)
  return np.asarray(jnp.abs(grad).sum(axis=(0, 3)) > 0)


@functools.lru_cache(maxsize=32)
def _unit_gradient(model: nn.Module, layer: str) -> Callable[..., jax.Array]:
  """d(sum of unit (i, j) of `layer`)/d(input), compiled once per model and layer (the
  unit's position is an argument): op by op it took seconds per unit."""
  def unit(x, variables, i, j):
    _, outputs = models.layer_outputs(model, variables, x)
    return outputs[layer][:, i, j, :].sum()
  return jax.jit(lambda variables, x, i, j: jax.grad(unit)(x, variables, i, j))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int
                     ) -> np.ndarray:
  """counts[true, predicted]."""
  counts = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(counts, (np.asarray(labels), np.asarray(predictions)), 1)
  return counts


def confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, k: int
                       ) -> np.ndarray:
  """Indices of the k wrong predictions with the highest predicted probability."""
  predicted = probabilities.argmax(-1)
  wrong = np.nonzero(predicted != labels)[0]
  confidence = probabilities[wrong, predicted[wrong]]
  return wrong[np.argsort(-confidence, kind='stable')[:k]]


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _png(fig) -> bytes:
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100)
  _plt().close(fig)
  return buffer.getvalue()


def plot_filters(kernel: np.ndarray) -> bytes:
  """conv1's filters (k×k×1×C) as a grid of images; red positive, blue negative."""
  plt = _plt()
  count = kernel.shape[-1]
  cols = 8
  rows = -(-count // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.2))
  limit = np.abs(kernel).max()
  for c, ax in enumerate(np.ravel(axes)):
    ax.axis('off')
    if c < count:
      ax.imshow(kernel[:, :, 0, c], cmap='RdBu_r', vmin=-limit, vmax=limit)
      ax.set_title(str(c), fontsize=7)
  fig.suptitle(f'conv1: {count} filters {kernel.shape[0]}×{kernel.shape[1]} '
               '(red > 0, blue < 0)')
  return _png(fig)


def plot_feature_maps(image: np.ndarray, outputs: Mapping[str, np.ndarray],
                      layers: Sequence[tuple[str, str]], channels: int = 8) -> bytes:
  """The input and the first `channels` maps of each of `layers` ((name, caption): the
  caption says e.g. before or after the activation), one row per layer, each row on
  one colour scale with its colour bar."""
  plt = _plt()
  fig, axes = plt.subplots(len(layers) + 1, channels, layout='constrained',
                           figsize=(channels * 1.2 + 1.2, (len(layers) + 1) * 1.45))
  for ax in np.ravel(axes):
    ax.axis('off')
  shown = axes[0, 0].imshow(image.squeeze(), cmap='gray')
  axes[0, 0].set_title('input', fontsize=7)
  fig.colorbar(shown, ax=axes[0, :], shrink=0.8, aspect=10).ax.tick_params(labelsize=6)
  for r, (name, caption) in enumerate(layers, start=1):
    maps = outputs[name][..., :channels]
    low, high = float(maps.min()), float(maps.max())
    for c in range(maps.shape[-1]):
      shown = axes[r, c].imshow(maps[..., c], cmap='viridis', vmin=low, vmax=high)
      axes[r, c].set_title(f'ch{c}', fontsize=6)
    axes[r, 0].set_title(f'{caption}, {maps.shape[0]}×{maps.shape[1]}\n', fontsize=7,
                         loc='left')  # A line above the channel titles.
    fig.colorbar(shown, ax=axes[r, :], shrink=0.8, aspect=10).ax.tick_params(labelsize=6)
  fig.suptitle('feature maps of one test digit (one colour scale per row)')
  return _png(fig)


def plot_receptive_fields(image: np.ndarray, fields: Sequence[tuple[str, np.ndarray,
                                                                    np.ndarray]]) -> bytes:
  """Per layer: the computed field (box) and the gradient field (shade) on the input."""
  plt = _plt()
  fig, axes = plt.subplots(1, len(fields), figsize=(2.2 * len(fields), 2.6))
  for ax, (title, computed, measured) in zip(np.atleast_1d(axes), fields):
    ax.imshow(image.squeeze(), cmap='gray')
    ax.imshow(np.ma.masked_where(~measured, measured), cmap='autumn', alpha=0.45)
    rows, cols = np.nonzero(computed)
    ax.add_patch(_plt().Rectangle((cols.min() - 0.5, rows.min() - 0.5),
                                  cols.max() - cols.min() + 1, rows.max() - rows.min() + 1,
                                  fill=False, edgecolor='cyan', linewidth=1.5))
    ax.set_title(title, fontsize=7)
    ax.axis('off')
  fig.suptitle('receptive field of one unit per layer: box = formulas, '
               'shade = non-zero gradient')
  fig.tight_layout()
  return _png(fig)


def plot_confusion(counts: np.ndarray) -> bytes:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 5.2))
  ax.imshow(np.log1p(counts), cmap='Blues')
  for (t, p), n in np.ndenumerate(counts):
    if n:
      ax.text(p, t, str(n), ha='center', va='center', fontsize=6,
              color='white' if t == p else 'black')
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_xticks(range(len(counts)))
  ax.set_yticks(range(len(counts)))
  accuracy = np.trace(counts) / counts.sum()
  ax.set_title(f'confusion matrix, test set ({counts.sum():,} images, '
               f'{100 * accuracy:.2f}% correct)')
  fig.tight_layout()
  return _png(fig)


def plot_mistakes(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                  indices: np.ndarray) -> bytes:
  plt = _plt()
  cols = 8
  rows = max(1, -(-len(indices) // cols))
  # Constrained layout keeps each row's two-line titles clear of the row above.
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.8 + 0.4),
                           layout='constrained', squeeze=False)
  for ax in np.ravel(axes):
    ax.axis('off')
  for ax, index in zip(np.ravel(axes), indices):
    predicted = probabilities[index].argmax()
    ax.imshow(images[index].squeeze(), cmap='gray')
    ax.set_title(f'#{index}: true {labels[index]}\npred {predicted} '
                 f'({100 * probabilities[index, predicted]:.0f}%)', fontsize=7)
  fig.suptitle('the most confident mistakes on the test set')
  return _png(fig)
