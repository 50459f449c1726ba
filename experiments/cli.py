"""What every entry point shares: bad input ends in one line, not a traceback."""

from __future__ import annotations

import difflib
import logging
import pathlib
import os
import re
import sys
from typing import Callable, Sequence

from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from cnn_jax import compilation_cache, options
from cnn_jax.errors import (CheckpointError, ConfigError, DatasetUnavailableError,
                            Interrupted, NonFiniteLossError, PeerTimeoutError)


flags.DEFINE_string(
    'compilation_cache', str(compilation_cache.default_root()),
    'Directory that keeps XLA\'s compiled programs, so reruns and the runs of a sweep '
    'skip compiling them again; \'\' turns it off. $JAX_COMPILATION_CACHE_DIR wins.')

_OURS = (str(pathlib.Path(__file__).resolve().parent.parent / 'cnn_jax'),
         str(pathlib.Path(__file__).resolve().parent))


# Where configs/ lives: the repo, or site-packages for an installed cnn_jax.
_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _installed(path: str) -> str:
  """`path`, or the installed configs/ file it names when run from another directory
  (configs/default.py outside the repo). Keeps a ':override' suffix."""
  file, colon, rest = path.partition(':')
  if not pathlib.Path(file).is_file() and (_ROOT / file).is_file():
    return str(_ROOT / file) + colon + rest
  return path


def _with_installed_config(argv: Sequence[str]) -> list[str]:
  """`argv` with '--config PATH' (absl's other spelling) as '--config=PATH', and PATH
  taken from the installed configs/ where it names one there (`_installed`)."""
  joined, i = [], 0
  while i < len(argv):
    pair = argv[i] == '--config' and i + 1 < len(argv)
    joined.append(f'--config={argv[i + 1]}' if pair else argv[i])
    i += 2 if pair else 1
  return [f'--config={_installed(a[len("--config="):])}' if a.startswith('--config=')
          else a for a in joined]


def define_config(default: str, help_text: str) -> None:
  """The --config flag: a config file, overridable field by field. ml_collections
  reads the command line's overrides while it defines the flag, and raises a traceback
  for a missing file or an unknown field: those end here in one `error:` line, exit 2."""
  default = _installed(default)
  error = config_arg_error(_with_installed_config(sys.argv)[1:], default)
  if error:
    print(f'error: {error}', file=sys.stderr)
    sys.exit(2)
  config_flags.DEFINE_config_file('config', default, help_text, lock_config=True)


def config_arg_error(argv: Sequence[str], default: str) -> str | None:
  """What is wrong with the --config arguments in `argv` (its spelling '--config=PATH'),
  in one line; None if nothing."""
  files = [a.split('=', 1)[1] for a in argv if a.startswith('--config=')]
  path = files[-1] if files else default
  if not pathlib.Path(path.split(':', 1)[0]).is_file():
    return f'--config={path}: no such config file'
  for arg in argv:
    if arg.startswith('--config.'):
      field = arg[len('--config.'):].split('=', 1)[0].split('.', 1)[0]
      if field not in options.FIELDS:
        close = difflib.get_close_matches(field, options.FIELDS, n=1)
        return (f'--config.{field} is not a config field' +
                (f'; did you mean --config.{close[0]}?' if close else '') +
                f' (fields: {", ".join(sorted(options.FIELDS))})')
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with a bad flag one `error:` line and exit 2 (absl's own: two
  lines, exit 1), of `argv` with its config path resolved (`_with_installed_config`).
  A config field's value absl cannot parse is named as the config checks name it, with
  the values it allows (read from absl's message, 'flag --config.F=V: …')."""
  try:
    return flags.FLAGS(_with_installed_config(argv))
  except flags.Error as e:
    message = ' '.join(str(e).split())
    match = re.match(r'flag --config\.(\w+)=(.*?): ', message)
    if match and match[1] in options.FIELDS:
      message = (f'config.{match[1]}={match[2]!r} is invalid: expected '
                 f'{options.FIELDS[match[1]].allowed}')
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


class _InfoFromCnnJaxOnly(logging.Filter):
  """Orbax and TFDS log a dozen INFO lines per checkpoint or split: keep the console
  for training progress, and every library's warnings."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.pathname.startswith(_OURS)


HELP_ARGS = ('--help', '-h', '-?', '--helpshort')


def help_text(doc: str | None) -> str:
  """The entry point's docstring, its own flags with defaults, and every --config field
  with the values it allows (absl's --help lists only the main module's flags)."""
  lines = [(doc or '').strip(), '', 'Flags:']
  seen = set()
  for module, module_flags in sorted(flags.FLAGS.flags_by_module_dict().items()):
    # absl files the main module's flags under sys.argv[0], the script's path.
    if not (module == sys.argv[0] or module.startswith(('experiments', 'ml_collections'))):
      continue
    for flag in sorted(module_flags, key=lambda f: f.name):
      if flag.name in seen or flag.name.startswith('config.'):
        continue
      seen.add(flag.name)
      default = flag.default_as_str or "''"
      if flag.name == 'config':
        default = getattr(flag, 'config_filename', None) or default
      lines.append(f'  --{flag.name}: {" ".join(flag.help.split())} (default: {default})')
  if 'config' in flags.FLAGS:
    lines += ['', 'Config fields, --config.<field>=<value> (defaults: the --config file):']
    lines += [f'  --config.{name}: {f.help} ({f.allowed}; default {f.default!r})'
              for name, f in options.FIELDS.items()]
  lines += ['', 'Logging and absl flags: --helpfull.']
  return '\n'.join(lines)


def run(main: Callable[[Sequence[str]], None], *, cache_compiled: bool = True) -> None:
  """absl's app.run, with config and dataset errors printed as `error: …`, exit 2,
  one CPU device per core (see `parallel.use_cpu_cores`), and compiled programs kept
  in --compilation_cache (off by default where `cache_compiled` is False: the
  benchmark, which times cold compiles)."""

  def guarded(argv: Sequence[str]) -> None:
    compilation_cache.enable(flags.FLAGS.compilation_cache)
    try:
      main(argv)
    except (ConfigError, DatasetUnavailableError) as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
    except (NonFiniteLossError, CheckpointError) as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(1)
    except PeerTimeoutError as e:
      print(f'error: {e}', file=sys.stderr, flush=True)
      # Not sys.exit: the interpreter's exit would wait for the hung collective and for
      # the peer at JAX's shutdown barrier.
      os._exit(1)  # pylint: disable=protected-access
    except Interrupted as e:
      print(f'interrupted: {e}', file=sys.stderr)
      sys.exit(130)

  if any(arg in HELP_ARGS for arg in sys.argv[1:]):
    print(help_text(sys.modules['__main__'].__doc__))
    sys.exit(0)
  absl_logging.get_absl_handler().addFilter(_InfoFromCnnJaxOnly())
  from cnn_jax import parallel  # pylint: disable=g-import-not-at-top
  parallel.use_cpu_cores()
  if not cache_compiled:
    flags.FLAGS.set_default('compilation_cache', '')
  app.run(guarded, flags_parser=parse_flags)
