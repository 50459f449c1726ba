r"""Classifies your own digit images: python -m experiments.predict --workdir=RUN IMAGE ...

Each PNG/JPEG (any size, dark ink on light paper or the reverse) is made MNIST-like
first: grayscale, inverted if the background is light, cropped to the digit, scaled
into a 20×20 box and centred by mass in 28×28. A file that cannot be read is reported
and the others are still classified (exit status 1 if any failed).
"""

import pathlib
import sys

from absl import flags
import numpy as np

from cnn_jax import digits
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A trained run; its best checkpoint is used.')
flags.DEFINE_integer('top', 3, 'How many classes to print per image.')
flags.DEFINE_string('save_preprocessed', None, 'A directory to write each image as the '
                    'model sees it (28×28 PNG), to check the preprocessing.')
flags.mark_flags_as_required(['workdir'])


def preprocessed_file_names(paths: list[str]) -> list[str]:
  """One distinct PNG name per input: its stem, with its folder (then a number) added
  where two inputs share a stem (a/1.png and b/1.jpg)."""
  stems = [pathlib.Path(p).stem for p in paths]
  names, taken = [], set()
  for path, stem in zip(paths, stems):
    candidates = [stem] if stems.count(stem) == 1 else []
    parent = pathlib.Path(path).resolve().parent.name
    candidates.append(f'{parent}_{stem}' if parent else stem)
    name = next((c for c in candidates if c not in taken), None)
    number = 2
    while name is None or name in taken:
      name, number = f'{candidates[-1]}_{number}', number + 1
    taken.add(name)
    names.append(name + '.png')
  return names


def main(argv):
  paths = argv[1:]
  if not paths:
    raise SystemExit('error: give one or more image files after the flags')
  # Here, not above: --help and bad flags answer without JAX's seconds-long import.
  from cnn_jax import inference  # pylint: disable=g-import-not-at-top
  run = inference.load_run(FLAGS.workdir)
  if run.spec.input_shape[-1] != 1:
    raise SystemExit(f'error: the run was trained on {run.spec.name} '
                     f'({run.spec.input_shape}); predict takes grayscale digit models')
  images, names, failed = [], [], 0
  for path in paths:
    try:
      images.append(digits.to_mnist(digits.load_grayscale(path), path))
      names.append(path)
    except digits.ImageError as e:
      print(f'error: {e}', file=sys.stderr)
      failed += 1
  if FLAGS.save_preprocessed and images:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    out = pathlib.Path(FLAGS.save_preprocessed)
    out.mkdir(parents=True, exist_ok=True)
    for file_name, image in zip(preprocessed_file_names(names), images):
      Image.fromarray(image[..., 0]).save(out / file_name)
    print(f'{len(images)} preprocessed image(s) written to {out}', file=sys.stderr)
  if images:
    probabilities = inference.probabilities(run, np.stack(images))
    for name, p in zip(names, probabilities):
      top = np.argsort(-p)[:FLAGS.top]
      ranked = '  '.join(f'{c}: {p[c]:.3f}' for c in top)
      print(f'{name}: {top[0]}  ({ranked})')
  if failed:
    sys.exit(1)


if __name__ == '__main__':
  cli.run(main)
