"""TensorBoard scalars and hyperparameters, written with the tensorboard package alone.

No TensorFlow on this path: the training process only imports TF to prepare data.
"""

from __future__ import annotations

import struct
import sys
import time
import types
from typing import Any, Mapping, Sequence

from cnn_jax import options

# TensorBoard's event writer does its file I/O through TensorFlow when TF is installed,
# and importing TF takes seconds a training process need not spend. This module name is
# TensorBoard's own switch to its TF-free file I/O (local files, S3/fsspec paths); a
# process that already has TF keeps TF's.
if 'tensorflow' not in sys.modules:
  sys.modules.setdefault('tensorboard.compat.notf',
                         types.ModuleType('tensorboard.compat.notf'))
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter


# The HParams dashboard's metric columns: what decides (validation), what is reported
# (test), and the overfitting gap.
METRICS = (('validation/accuracy', 'validation accuracy'), ('test/accuracy', 'test accuracy'),
           ('test/loss', 'test loss'), ('train_eval/accuracy', 'train accuracy (eval mode)'),
           ('train/generalization_gap', 'generalisation gap'))


def hparam_value(value: Any) -> bool | int | float | str:
  """The HParams dashboard takes bool, number or string; tuples become text."""
  if isinstance(value, (bool, int, float, str)):
    return value
  if value is None:
    return 'none'
  if isinstance(value, (tuple, list)):
    return ','.join(str(v) for v in value)
  return str(value)


def hparam_names(compared: Sequence[str] = (), grouped: bool = False) -> list[str]:
  """The hyperparameters TensorBoard shows for a run. One of a sweep's seed groups
  (`grouped`: its dashboard row stands for all its seeds, so no seed): the swept
  `compared` fields and the scale, few enough that the dashboard (which lists them
  alphabetically and ticks the first five) shows every one. A lone run: the recipe and
  its seed, to compare runs trained apart (`options.Field`: recipe, scale)."""
  shown = [name for name, f in options.FIELDS.items() if (f.scale if grouped else f.recipe)]
  return list(dict.fromkeys([*compared, *shown, *([] if grouped else ['seed'])]))


class SummaryWriter:
  """Appends events to one TensorBoard run directory."""

  def __init__(self, logdir: str):
    self._writer = EventFileWriter(logdir)

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    summary = summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        for tag, value in values.items()])
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=step,
                                           summary=summary))

  def hparams(self, values: Mapping[str, Any], group: str | None = None) -> None:
    """Records this run's hyperparameters for TensorBoard's HParams dashboard.

    Runs with the same `group` (e.g. one configuration over several seeds) form one
    session group there; None groups by the values themselves.
    """
    summary = hparams_summary.hparams_pb({k: hparam_value(v) for k, v in values.items()},
                                         trial_id=group)
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=0,
                                           summary=summary))

  def hparams_columns(self, hparams: Sequence[str]) -> None:
    """The HParams dashboard's columns, in this order: `hparams`, then METRICS. Without
    it TensorBoard shows every hyperparameter and scalar tag, alphabetically."""
    summary = hparams_summary.hparams_config_pb(
        hparams=[hparams_summary.HParam(name) for name in hparams],
        metrics=[hparams_summary.Metric(tag, display_name=name) for tag, name in METRICS])
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=0,
                                           summary=summary))

  def image(self, step: int, tag: str, png: bytes) -> None:
    """A PNG for TensorBoard's Images dashboard."""
    width, height = struct.unpack('>II', png[16:24])  # From the IHDR chunk.
    image = summary_pb2.Summary.Image(height=height, width=width, colorspace=4,
                                      encoded_image_string=png)
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=step,
                                           summary=summary))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
