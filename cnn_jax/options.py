"""The design choices the article discusses, and the checks every config passes first.

A bad value fails here, before any data is loaded or anything is compiled, with one
line naming the field and what it allows.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import pathlib
from typing import Any, Callable, Mapping, Sequence

from cnn_jax import geometry
from cnn_jax.errors import ConfigError, GeometryError, WorkdirConflictError


class ModelKind(enum.StrEnum):
  CNN = 'cnn'
  MLP = 'mlp'


class DropoutPlacement(enum.StrEnum):
  NONE = 'none'
  BEFORE_FC1 = 'before_fc1'
  AFTER_FC1 = 'after_fc1'
  BOTH = 'both'


class BatchNormPlacement(enum.StrEnum):
  NONE = 'none'
  CONV = 'conv'
  FC1 = 'fc1'
  BOTH = 'both'


class Activation(enum.StrEnum):
  RELU = 'relu'
  LEAKY_RELU = 'leaky_relu'
  TANH = 'tanh'
  SIGMOID = 'sigmoid'


class Pooling(enum.StrEnum):
  MAX = 'max'
  AVG = 'avg'


class Optimizer(enum.StrEnum):
  ADAM = 'adam'
  ADAMW = 'adamw'
  SGD = 'sgd'


class Schedule(enum.StrEnum):
  CONSTANT = 'constant'
  COSINE = 'cosine'


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _int(low: int, high: int | None = None) -> tuple[Callable[[Any], bool], str]:
  def ok(v: Any) -> bool:
    return _is_int(v) and v >= low and (high is None or v <= high)
  return ok, f'an integer >= {low}' + ('' if high is None else f' and <= {high}')


def _real(low: float, high: float | None = None, *, open_high: bool = True,
          open_low: bool = False) -> tuple[Callable[[Any], bool], str]:
  def ok(v: Any) -> bool:
    if not _is_real(v) or v < low or (open_low and v == low):
      return False
    return high is None or v < high or (not open_high and v == high)
  low_text = f'> {low:g}' if open_low else f'>= {low:g}'
  high_text = '' if high is None else f" and {'<' if open_high else '<='} {high:g}"
  return ok, f'a number {low_text}{high_text}'


def _choice(*allowed: str) -> tuple[Callable[[Any], bool], str]:
  allowed = tuple(str(a) for a in allowed)
  return (lambda v: v in allowed), 'one of ' + ', '.join(repr(a) for a in allowed)


def _sizes(min_len: int) -> tuple[Callable[[Any], bool], str]:
  def ok(v: Any) -> bool:
    return (isinstance(v, (tuple, list)) and len(v) >= min_len
            and all(_is_int(x) and x >= 1 for x in v))
  return ok, f'a tuple of >= {min_len} integers >= 1'


def _bool() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: isinstance(v, bool)), 'True or False'


def _auto_or_int(low: int) -> tuple[Callable[[Any], bool], str]:
  # A number given on the command line to a field whose default is 'auto' arrives as text.
  def ok(v: Any) -> bool:
    return v == 'auto' or (_is_int(v) and v >= low) or (
        isinstance(v, str) and v.isdecimal() and int(v) >= low)
  return ok, f"'auto' or an integer >= {low}"


def _seed_or(*words: str) -> tuple[Callable[[Any], bool], str]:
  ok_int, allowed = _int(0, 2**31 - 1)
  return (lambda v: v in words or ok_int(v)), allowed + ''.join(
      f"{', or' if i == len(words) - 1 else ','} '{w}'" for i, w in enumerate(words))


def _name() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: isinstance(v, str) and v.strip() != ''), 'a non-empty name'


def _optional_path() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: v is None or (isinstance(v, str) and v != '')), 'None or a path'


@dataclasses.dataclass(frozen=True)
class Applies:
  """Where a field acts: the configs `when` accepts. In any other a value but the
  field's default would be silently ignored, so `validate_config` refuses it."""
  when: Callable[[Mapping[str, Any]], bool]  # (a config whose values are valid)
  needs: str  # `when` in words, as the error and the README's table say it
  fields: tuple[str, ...]  # the fields `when` reads, named in the error


def _with(field: str, *values: str) -> Applies:
  """Acts only where `field` is one of `values`."""
  return Applies(lambda c: c[field] in values, f"{field} {' or '.join(values)}", (field,))


_CNN_ONLY = _with('model', ModelKind.CNN)  # An attribute of models.CNN, not of MLP.


def _beside_batch_norm(config: Mapping[str, Any]) -> bool:
  """A dropout next to a BatchNorm (models.conv_block_order, head_order): in the conv
  blocks, or after FC1 where FC1 has a BatchNorm."""
  return ((config['batch_norm'] in (BatchNormPlacement.CONV, BatchNormPlacement.BOTH)
           and config['conv_dropout_rate'] > 0)
          or (config['batch_norm'] in (BatchNormPlacement.FC1, BatchNormPlacement.BOTH)
              and config['dropout_placement'] in (DropoutPlacement.AFTER_FC1,
                                                  DropoutPlacement.BOTH)))


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field: its default, what it allows, what it does, and its role.

  resumable: it may change when a run resumes, since it changes where or how often
  things happen, not what is computed. recipe: TensorBoard's HParams dashboard shows
  it for a run trained alone; scale: also for a sweep's runs (epochs, data slice).
  """
  default: Any
  check: tuple[Callable[[Any], bool], str]  # (accepts a value, what it allows)
  help: str
  resumable: bool = False
  recipe: bool = False
  scale: bool = False
  # What a config written before the field existed ran as, where that is not the
  # default (a field that changed behaviour); None: the default.
  absent: Any = None
  # Where it acts (None: every config); a value but the default elsewhere is refused.
  applies: Applies | None = None
  # Its values are numbers or words: the ConfigDict holds it untyped, so the command
  # line (--config.split_seed=seed) and code can set either.
  untyped: bool = False

  @property
  def allowed(self) -> str:
    return self.check[1]


_ACTIVATIONS = ', '.join(Activation)

# Every config has exactly these fields (configs/default.py takes these defaults: the
# article's network and the default recipe). The model classes take theirs by name.
FIELDS: dict[str, Field] = {
    # Data.
    'dataset': Field('mnist', _name(), 'a TFDS image dataset; MNIST prepares offline '
                     'from data/mnist, fashion_mnist and cifar10 need the network once'),
    'data_dir': Field(None, _optional_path(), "where TFDS keeps prepared data (None: "
                      "$TFDS_DATA_DIR or ~/tensorflow_datasets)", resumable=True),
    'manual_dir': Field(None, _optional_path(), 'where TFDS finds manual downloads '
                        '(None: the repo\'s data/DATASET)', resumable=True),
    'max_train_examples': Field(0, _int(0), 'train on N images (0: all), a class-'
                                'stratified random subset (split_seed) of those not '
                                'held out; smaller sizes are subsets of larger ones: '
                                'the training-set size a sweep varies', recipe=True,
                                scale=True),
    'max_test_examples': Field(0, _int(0), 'the first N test images (0: all)'),
    'validation_examples': Field(5000, _int(1), 'N training-split images held out of '
                                 'training, a class-stratified random subset (split_seed):'
                                 ' the best epoch, early stopping and tuning are decided '
                                 'on them'),
    'split_seed': Field(0, _seed_or('seed', 'last'), 'which images are held out and '
                        'which subset trains: a number is one split for every '
                        "configuration and run seed; 'seed': each run seed its own split "
                        '(the configurations a sweep pairs by seed share it), so '
                        "intervals over seeds include which images were drawn; 'last': "
                        "the training split's last images held out, its first trained "
                        'on, as runs from before this field did', absent='last',
                        untyped=True),
    'train_eval_examples': Field(10000, _int(1), 'N of the images a run trains on '
                                 '(class-stratified), evaluated in eval mode beside '
                                 'validation: the generalisation gap'),
    'shift_curve_pixels': Field(0, _int(0, 27), 'also test the checkpoint validation '
                                'chose on the test images moved 1..N pixels right, left, '
                                'down and up (test_right1, …): accuracy against where a '
                                'digit appears'),
    'test_every_epoch': Field(False, _bool(), 'also evaluate the test sets (test, '
                              'test_shifted) after every epoch, for their curves; '
                              'otherwise only the checkpoint validation chose is tested, '
                              'once, when the run ends', resumable=True),
    'test_shift_pixels': Field(3, _int(0), 'also test on the test images moved N pixels '
                               'right and down, as test_shifted (0: not)'),
    # The network (README, The network).
    'model': Field('cnn', _choice(*ModelKind), 'the article\'s CNN, or the MLP baseline '
                   'of the CNN-vs-ANN comparison', recipe=True),
    'conv_features': Field((32, 64), _sizes(1), 'one conv → act → pool block per entry, '
                           'its output channels', applies=_CNN_ONLY),
    'kernel_size': Field(3, _int(1), 'conv kernel height and width', applies=_CNN_ONLY),
    'conv_stride': Field(1, _int(1), 'conv stride', applies=_CNN_ONLY),
    'padding': Field(1, _int(0), 'zero padding of each conv: 0 shrinks 28 → 26 and '
                     "FC1's input 3136 → 1600", recipe=True, applies=_CNN_ONLY),
    'activation': Field('relu', _choice(*Activation), 'after each conv (the MLP: '
                        'after each hidden layer)', recipe=True),
    # (With model=mlp fc_activation is refused unless 'none', so activation decides.)
    'leaky_relu_slope': Field(0.01, _real(0.0, 1.0), "leaky_relu's slope below 0",
                              applies=Applies(
                                  lambda c: Activation.LEAKY_RELU in (
                                      c['activation'], c['fc_activation']),
                                  'activation or fc_activation leaky_relu',
                                  ('activation', 'fc_activation'))),
    'pooling': Field('max', _choice(*Pooling), 'after each conv block', recipe=True,
                     applies=_CNN_ONLY),
    'pool_window': Field(2, _int(1), 'pooling window; 3 with stride 2 overlaps',
                         recipe=True, applies=_CNN_ONLY),
    'pool_stride': Field(2, _int(1), 'pooling stride', applies=_CNN_ONLY),
    'fc_features': Field(128, _int(1), "FC1's output width", applies=_CNN_ONLY),
    'fc_activation': Field('none', _choice('none', *Activation), 'between FC1 and FC2 '
                           "(the article's table has none)", applies=_CNN_ONLY),
    'dropout_placement': Field('before_fc1', _choice(*DropoutPlacement), 'where dropout '
                               'acts (the MLP: any but none, after each hidden layer)',
                               recipe=True),
    'dropout_rate': Field(0.25, _real(0.0, 1.0), 'the probability of zeroing a unit in '
                          'training; the rest are scaled by 1/(1 - rate)', recipe=True),
    'batch_norm': Field('none', _choice(*BatchNormPlacement), 'BatchNorm after each '
                        'conv, after FC1, or both, before the activation; its running '
                        'statistics in evaluation', recipe=True, applies=_CNN_ONLY),
    'dropout_before_batch_norm': Field(False, _bool(), 'with batch_norm: the dropout '
                                       'after FC1 (dropout_placement after_fc1/both) and '
                                       "the conv blocks' in front of the BatchNorm instead "
                                       'of after it and its activation (the order the '
                                       'article advises against)', recipe=True,
                                       applies=Applies(
                                           _beside_batch_norm,
                                           'a dropout beside a BatchNorm: batch_norm conv '
                                           'or both with conv_dropout_rate > 0, or '
                                           'batch_norm fc1 or both with dropout_placement '
                                           'after_fc1 or both',
                                           ('batch_norm', 'conv_dropout_rate',
                                            'dropout_placement'))),
    'conv_dropout_rate': Field(0.0, _real(0.0, 1.0), 'dropout at the end of each conv '
                               'block, after pooling (0: none; the article: "dropout '
                               'there can disrupt that structure")', recipe=True,
                               applies=_CNN_ONLY),
    'mlp_hidden_features': Field((3136, 128), _sizes(0), "one dense layer as wide as "
                                 "the CNN's flatten, then the CNN's head",
                                 applies=_with('model', ModelKind.MLP)),
    # The training recipe.
    'optimizer': Field('adam', _choice(*Optimizer), 'the optimizer', recipe=True),
    # Chosen on validation: configs/recipe_sweep.py, results/recipe_sweep/.
    'learning_rate': Field(1e-2, _real(0.0, open_low=True), 'the peak learning rate',
                           recipe=True),
    'lr_schedule': Field('cosine', _choice(*Schedule), 'constant, or a cosine to 0 at '
                         'the last step', recipe=True),
    'warmup_epochs': Field(0.1, _real(0.0), 'linear warm-up from 0, in epochs'),
    'momentum': Field(0.9, _real(0.0, 1.0), "sgd's momentum (0: none)",
                      applies=_with('optimizer', Optimizer.SGD)),
    'weight_decay': Field(0.0, _real(0.0), 'adamw (decoupled) and sgd (L2)',
                          applies=_with('optimizer', Optimizer.ADAMW, Optimizer.SGD)),
    'batch_size': Field(128, _int(1), 'training examples per step, over all devices',
                        recipe=True),
    'eval_batch_size': Field(1000, _int(1), 'examples per evaluation batch',
                             resumable=True),
    'num_epochs': Field(2, _int(1), 'epochs; the schedule ends at the last one',
                        recipe=True, scale=True),
    'early_stopping_patience': Field(0, _int(0), 'stop once validation accuracy has not '
                                     'improved for N epochs (0: never)'),
    'early_stopping_min_epochs': Field(0, _int(0), 'never stop early before this epoch',
                                       applies=Applies(
                                           lambda c: c['early_stopping_patience'] > 0,
                                           'early_stopping_patience > 0',
                                           ('early_stopping_patience',))),
    # Seeds travel as int32 (jax.random.key, vmap).
    'seed': Field(0, _int(0, 2**31 - 1), 'initial weights, example order and dropout'),
    # How the run goes, not what it computes.
    'steps_per_dispatch': Field('auto', _auto_or_int(1), 'train steps per dispatch to '
                                'the device: auto (1 on CPU; on an accelerator the epoch '
                                'in the fewest dispatches of <= 128 steps) or a number; '
                                'results do not depend on it', resumable=True),
    'log_every_steps': Field(100, _int(1), 'training curves and progress every N steps',
                             resumable=True),
    'checkpoints_to_keep': Field(3, _int(1), 'epoch checkpoints kept (and the best '
                                 'one)', resumable=True),
}


def default_config():
  """An ml_collections.ConfigDict of every field at its default."""
  import ml_collections  # pylint: disable=g-import-not-at-top  # Not for --help.
  config = ml_collections.ConfigDict()
  for name, field in FIELDS.items():
    # A None default must say its type, or the command line could not set it.
    config[name] = (ml_collections.config_dict.placeholder(str) if field.default is None
                    else ml_collections.FieldReference(field.default, field_type=object)
                    if field.untyped else field.default)
  return config


def with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
  """`config` with each field it lacks at that field's default (or, for a field that
  changed what runs compute, at what runs before it ran as: `Field.absent`): a workdir,
  sweep.json or run written before a field existed reads as what it ran. Unknown fields
  stay, for `validate_config` to name."""
  return {**{k: f.default if f.absent is None else f.absent
             for k, f in FIELDS.items() if k not in config}, **config}


def markdown_table() -> str:
  """The README's Options table, from FIELDS."""
  def text(value: Any) -> str:
    return '`' + (repr(value) if isinstance(value, str) else str(value)) + '`'
  lines = ['| field | default | allowed | what it does | acts only with |',
           '|---|---|---|---|---|']
  lines += [f'| `{name}` | {text(f.default)} | {f.allowed} | {f.help} | '
            f'{f.applies.needs if f.applies else ""} |' for name, f in FIELDS.items()]
  return '\n'.join(lines)


def is_default(value: Any, default: Any) -> bool:
  # A config read back from JSON holds lists where the defaults are tuples.
  as_tuple = lambda v: tuple(v) if isinstance(v, list) else v
  return as_tuple(value) == as_tuple(default)


def validate_config(config: Mapping[str, Any]) -> None:
  """Checks every field's type and range, then that each field set to a value but its
  default acts in this config (`Field.applies`); raises ConfigError naming the first
  bad one (for a field that does not act: it and the fields that decide it)."""
  unknown = sorted(set(config.keys()) - set(FIELDS))
  if unknown:
    raise ConfigError(f'config.{unknown[0]} is not a field; fields are: '
                      + ', '.join(sorted(FIELDS)))
  for field, (ok, allowed) in ((k, f.check) for k, f in FIELDS.items()):
    if field not in config:
      raise ConfigError(f'config.{field} is missing: expected {allowed}')
    if not ok(config[field]):
      raise ConfigError(f'config.{field}={config[field]!r} is invalid: expected {allowed}')
  # The fields the model decides first: fc_activation with model=mlp is named as such,
  # not as what leaves leaky_relu_slope acting.
  ruled = sorted(((k, f) for k, f in FIELDS.items() if f.applies),
                 key=lambda kf: kf[1].applies.fields != ('model',))
  for field, f in ruled:
    if not is_default(config[field], f.default) and not f.applies.when(config):
      deciding = ', '.join(f'{k}={config[k]!r}' for k in f.applies.fields)
      raise ConfigError(f'config.{field}={config[field]!r} has no effect with {deciding}: '
                        f'it acts only with {f.applies.needs} (or leave it at its default '
                        f'{f.default!r})')


# Which fields decide the geometry of each kind of layer, for the error message.
_GEOMETRY_FIELDS = {'conv': ('kernel_size', 'padding', 'conv_stride'),
                    'pool': ('pool_window', 'pool_stride')}


def validate_geometry(config: Mapping[str, Any], input_shape: Sequence[int],
                      num_classes: int) -> list[geometry.Layer]:
  """The layer table for this input, or ConfigError if a layer cannot fit it.

  The error names the fields of the failing layer and of every earlier layer that shrank
  its input: a 30×30 kernel leaves 1×1 for the first pool, and the kernel is to blame.
  """
  from cnn_jax import models  # pylint: disable=g-import-not-at-top  # JAX: not for --help.
  try:
    rows = models.layer_table(config, input_shape, num_classes)
    # The article's rule that a conv tiles its input; the module (like nn.Conv) rounds.
    for i, row in enumerate(rows):
      if row.kind == 'Conv2D' and config['model'] == ModelKind.CNN:
        for size in rows[i - 1].output_shape[:2]:
          try:
            geometry.conv_output_size(size, config['kernel_size'], config['conv_stride'],
                                      config['padding'], layer=row.name)
          except GeometryError as error:
            error.rows_before = rows[:i]
            raise
    return rows
  except GeometryError as e:
    shrinking = [(before, row) for before, row in zip(e.rows_before, e.rows_before[1:])
                 if row.output_shape[:2] != before.output_shape[:2]]
    names = [row.name for _, row in shrinking] + [e.layer]
    kinds = list(dict.fromkeys(name.rstrip('0123456789') for name in names))
    fields = ', '.join(f'config.{f}={config[f]!r}'
                       for kind in kinds for f in _GEOMETRY_FIELDS.get(kind, ()))
    history = ', '.join(f'{row.name} {geometry.shape_text(before.output_shape[:2])}'
                        f'→{geometry.shape_text(row.output_shape[:2])}'
                        for before, row in shrinking)
    history = f' (before it: {history})' if history else ''
    raise ConfigError(f'{fields} do not fit a {geometry.shape_text(input_shape)} input: '
                      f'{e}{history}') from None


def config_changes(workdir: pathlib.Path, config: Mapping[str, Any]) -> list[str]:
  """'field: old there, new now' for each field that changes what workdir's run
  computes (all but the resumable ones); [] if workdir holds no config.json or the same.

  Compared after a JSON round trip (tuples become lists), so the same config written by
  another process compares equal.
  """
  path = workdir / 'config.json'
  if not path.exists():
    return []
  try:
    previous = json.loads(path.read_text())
  except ValueError:
    raise WorkdirConflictError(f'{path} is not valid JSON: fix or delete it, or use '
                               'another --workdir') from None
  return config_changes_between(previous, config)


def config_changes_between(previous: Mapping[str, Any], config: Mapping[str, Any]
                           ) -> list[str]:
  """`config_changes` of two configs: what `config` changes in a run of `previous`."""
  previous = json.loads(json.dumps(with_defaults(previous), default=list))
  current = json.loads(json.dumps(with_defaults(config), default=list))
  changed = sorted(k for k in set(previous) | set(current)
                   if not (k in FIELDS and FIELDS[k].resumable)
                   and previous.get(k) != current.get(k))
  return [f'{k}: {previous.get(k)!r} there, {current.get(k)!r} now' for k in changed]


def check_workdir(workdir: pathlib.Path, config: Mapping[str, Any],
                  allow_change: bool = False) -> None:
  """Refuses a workdir that is a file, holds a run of another config or one an older
  cnn_jax wrote; reads only."""
  if workdir.exists() and not workdir.is_dir():
    raise ConfigError(f'workdir {workdir} is a file: expected a directory')
  old = [name for name in ('best_checkpoint', 'interrupted') if (workdir / name).is_dir()]
  if old:
    raise ConfigError(f'workdir {workdir} holds {old[0]}/: an older cnn_jax wrote it '
                      '(checkpoints numbered by epoch); train it in a new --workdir')
  changes = [] if allow_change else config_changes(workdir, config)
  if changes:
    raise WorkdirConflictError(
        f'{workdir} holds a run of another configuration ({", ".join(changes)}); use '
        'another --workdir, or pass --allow_config_change to continue it with this one')


if __name__ == '__main__':
  print(markdown_table())
