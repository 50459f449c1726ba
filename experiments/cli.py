"""What every entry point shares: bad input ends in one line, not a traceback."""

from __future__ import annotations

import logging
import pathlib
import sys
from typing import Callable, Sequence

from absl import app
from absl import logging as absl_logging

from cnn_jax import parallel
from cnn_jax.checkpoints import CheckpointError
from cnn_jax.input_pipeline import DatasetUnavailableError
from cnn_jax.options import ConfigError
from cnn_jax.safety import Interrupted, NonFiniteLossError


_OURS = (str(pathlib.Path(__file__).resolve().parent.parent / 'cnn_jax'),
         str(pathlib.Path(__file__).resolve().parent))


class _InfoFromCnnJaxOnly(logging.Filter):
  """Orbax and TFDS log a dozen INFO lines per checkpoint or split: keep the console
  for training progress, and every library's warnings."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.pathname.startswith(_OURS)


def run(main: Callable[[Sequence[str]], None]) -> None:
  """absl's app.run, with config and dataset errors printed as `error: …`, exit 2,
  and one CPU device per core (see `parallel.use_cpu_cores`)."""

  def guarded(argv: Sequence[str]) -> None:
    try:
      main(argv)
    except (ConfigError, DatasetUnavailableError) as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
    except (NonFiniteLossError, CheckpointError) as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(1)
    except Interrupted as e:
      print(f'interrupted: {e}', file=sys.stderr)
      sys.exit(130)

  absl_logging.get_absl_handler().addFilter(_InfoFromCnnJaxOnly())
  parallel.use_cpu_cores()
  app.run(guarded)
