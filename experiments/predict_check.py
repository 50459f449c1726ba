r"""How well `predict` does on digits that are not MNIST:
python -m experiments.predict_check --workdir=RUN   (needs: pip install -e '.[digits]')

Two sets, each written to PNG files and read back through predict's own preprocessing:
- handwritten: scikit-learn's copy of the UCI optical digits (1,797 digits by 43
  writers, 8×8, 16 grey levels), drawn dark on white and enlarged 8× as a scan would be;
- typed: 0-9 rendered in every DejaVu font matplotlib ships (not handwriting: a check
  of the preprocessing on clean, differently shaped strokes).
"""

import pathlib
import tempfile

from absl import flags
import numpy as np
from PIL import Image

from cnn_jax import digits, provenance
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A trained run; its best checkpoint is used.')
flags.mark_flags_as_required(['workdir'])


def handwritten(directory: pathlib.Path) -> tuple[list[pathlib.Path], np.ndarray]:
  try:
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise SystemExit("error: scikit-learn is missing: pip install -e '.[digits]'") from None
  data = datasets.load_digits()
  paths = []
  for i, image in enumerate(data.images):
    pixels = (255 - image * 255 / 16).astype(np.uint8)  # Dark ink on white paper.
    path = directory / f'uci_{i}.png'
    Image.fromarray(pixels).resize((64, 64), Image.Resampling.NEAREST).save(path)
    paths.append(path)
  return paths, data.target


def typed(directory: pathlib.Path) -> tuple[list[pathlib.Path], np.ndarray]:
  import matplotlib  # pylint: disable=g-import-not-at-top
  from PIL import ImageDraw, ImageFont  # pylint: disable=g-import-not-at-top
  fonts = sorted(pathlib.Path(matplotlib.get_data_path(), 'fonts', 'ttf').glob('DejaVu*.ttf'))
  paths, labels = [], []
  for font_path in fonts:
    font = ImageFont.truetype(str(font_path), 80)
    for d in range(10):
      page = Image.new('L', (120, 120), 255)
      ImageDraw.Draw(page).text((30, 10), str(d), fill=0, font=font)
      if np.asarray(page).min() > 128:
        break  # A font without digit glyphs (DejaVuSansDisplay).
      path = directory / f'{font_path.stem}_{d}.png'
      page.save(path)
      paths.append(path)
      labels.append(d)
  return paths, np.array(labels)


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  # Here, not above: --help and bad flags answer without JAX's seconds-long import.
  from cnn_jax import inference  # pylint: disable=g-import-not-at-top
  run = inference.load_run(FLAGS.workdir)
  print(f'{FLAGS.workdir}: {run.which} checkpoint (epoch {run.epoch})\n')
  print('| digits | images | accuracy | most confused (true→predicted: count) |')
  print('|---|---:|---:|---|')
  with tempfile.TemporaryDirectory() as tmp:
    for name, make in (('handwritten, UCI via scikit-learn (43 writers)', handwritten),
                       ('typed, DejaVu fonts', typed)):
      paths, labels = make(pathlib.Path(tmp))
      images = np.stack([digits.to_mnist(digits.load_grayscale(p), str(p)) for p in paths])
      predicted = inference.probabilities(run, images).argmax(-1)
      wrong = predicted != labels
      pairs, counts = np.unique(np.stack([labels[wrong], predicted[wrong]], 1), axis=0,
                                return_counts=True)
      top = ', '.join(f'{t}→{p}: {c}' for (t, p), c in
                      sorted(zip(map(tuple, pairs), counts), key=lambda x: -x[1])[:3])
      print(f'| {name} | {len(labels):,} | {100 * (1 - wrong.mean()):.1f}% | {top} |')
  print(f'\n{provenance.footer(provenance.command_line("experiments.predict_check"))}')


if __name__ == '__main__':
  cli.run(main)
