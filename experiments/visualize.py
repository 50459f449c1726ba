r"""Figures of what a trained run learned: python -m experiments.visualize --workdir=RUN

Writes PNGs to --output_dir (default RUN/figures) and the same images to the run's
TensorBoard (Images tab): conv1's filters, the feature maps of one test digit, the
receptive field of one unit per layer (formulas vs gradients), the confusion matrix
and the most confident mistakes.
"""

import pathlib

from absl import flags
import numpy as np

from cnn_jax import geometry, input_pipeline
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A training run (python -m experiments.train).')
flags.DEFINE_string('output_dir', None, 'Where the PNGs go (default WORKDIR/figures).')
flags.DEFINE_integer('index', 0, 'The test image shown in feature maps and fields.')
flags.DEFINE_integer('mistakes', 16, 'How many confident mistakes to show.')
flags.mark_flags_as_required(['workdir'])


def main(argv):
  if len(argv) > 1:
    raise SystemExit(f'error: unexpected arguments {argv[1:]}')
  # Here, not above: --help and bad flags answer without JAX's seconds-long import.
  # pylint: disable-next=g-import-not-at-top
  from cnn_jax import inference, models, visualize
  from cnn_jax.metric_writers import SummaryWriter  # pylint: disable=g-import-not-at-top
  run = inference.load_run(FLAGS.workdir)
  test = input_pipeline.load_dataset(run.config).test
  if not 0 <= FLAGS.index < len(test.labels):
    raise SystemExit(f'error: --index={FLAGS.index} is invalid: expected 0..'
                     f'{len(test.labels) - 1}')
  out = pathlib.Path(FLAGS.output_dir or pathlib.Path(FLAGS.workdir) / 'figures')
  out.mkdir(parents=True, exist_ok=True)
  figures = {}

  probabilities = inference.probabilities(run, test.images)
  predicted = probabilities.argmax(-1)
  figures['confusion'] = visualize.plot_confusion(
      visualize.confusion_matrix(test.labels, predicted, run.spec.num_classes))
  figures['mistakes'] = visualize.plot_mistakes(
      test.images, test.labels, probabilities,
      visualize.confident_mistakes(probabilities, test.labels, FLAGS.mistakes))

  if run.config['model'] == 'cnn':
    figures['filters'] = visualize.plot_filters(np.asarray(run.params['conv1']['kernel']))
    image = test.images[FLAGS.index:FLAGS.index + 1]
    _, outputs = models.layer_outputs(run.model, run.variables,
                                      image.astype(np.float32) / 255.0)
    table = models.layer_table(run.config, run.spec.input_shape, run.spec.num_classes)
    layers = visualize.spatial_layers(table)
    figures['feature_maps'] = visualize.plot_feature_maps(
        image[0], {k: np.asarray(v[0]) for k, v in outputs.items()},
        visualize.feature_map_captions(layers))
    fields = []
    for row in layers:
      if row.kind == 'Activation':
        continue
      i, j = row.output_shape[0] // 2, row.output_shape[1] // 2
      computed = visualize.computed_field(row, i, j, run.spec.input_shape[:2])
      measured = visualize.gradient_field(run.model, run.variables, row.name, i, j,
                                          run.spec.input_shape)
      agree = 'agree' if (computed == measured).all() else 'DIFFER'
      size = row.receptive_field.size
      fields.append((f'{row.name} unit ({i},{j}): {size}×{size}, {agree}', computed,
                     measured))
      print(f'{row.name} unit ({i}, {j}): computed field {size}×{size}; gradient '
            f'field {"equal" if agree == "agree" else "different"}')
    figures['receptive_fields'] = visualize.plot_receptive_fields(image[0], fields)

  writer = SummaryWriter(str(FLAGS.workdir))
  for name, png in figures.items():
    (out / f'{name}.png').write_bytes(png)
    writer.image(run.epoch, f'visualize/{name}', png)
  writer.close()
  accuracy = float((predicted == test.labels).mean())
  print(f'{run.which} checkpoint (epoch {run.epoch}): test accuracy {100 * accuracy:.2f}%,'
        f' {int((predicted != test.labels).sum())} mistakes')
  print(f'Wrote {", ".join(f"{n}.png" for n in figures)} to {out} and to TensorBoard '
        f'(tensorboard --logdir={FLAGS.workdir}, Images tab)')


if __name__ == '__main__':
  cli.run(main)
