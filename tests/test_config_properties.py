"""Property-based: any invalid value of any field is one line naming the field, raised
before data or JAX are touched; any geometry either fits or is refused the same way."""

import math

from hypothesis import given, settings, strategies as st
import ml_collections
import pytest

from configs import default
from cnn_jax import errors, options, train

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(-5, 5), max_size=4).map(tuple),
    st.lists(st.text(max_size=3), max_size=2),
    # A ConfigDict refuses dotted keys itself, so no config can carry one to the trainer.
    st.dictionaries(st.text(max_size=3).filter(lambda k: '.' not in k), st.integers(),
                    max_size=2))


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(sorted(options.FIELDS)), value=ANY_VALUE)
def test_invalid_values_fail_in_one_line_naming_the_field(field, value):
  ok, allowed = options.FIELDS[field].check
  config = default.get_config().to_dict()
  config[field] = value
  if ok(value):
    rule = options.FIELDS[field].applies
    if (rule and not rule.when(config)
        and not options.is_default(value, options.FIELDS[field].default)):
      # Valid, but the default config ignores it (weight_decay under adam): refused too.
      with pytest.raises(errors.ConfigError) as error:
        options.validate_config(config)
      message = str(error.value)
      assert message.startswith(f'config.{field}={value!r} has no effect with ')
      assert '\n' not in message and rule.needs in message
      return
    options.validate_config(config)  # Valid values pass.
    return
  with pytest.raises(errors.ConfigError) as error:
    options.validate_config(config)
  message = str(error.value)
  assert message.startswith(f'config.{field}=') and '\n' not in message
  assert allowed in message


@settings(max_examples=25, deadline=None)
@given(field=st.sampled_from(sorted(options.FIELDS)), value=ANY_VALUE)
def test_the_trainer_refuses_them_before_loading_anything(field, value, tmp_path_factory):
  ok, _ = options.FIELDS[field].check
  if ok(value):
    return
  values = default.get_config().to_dict()
  values[field] = value
  # type_safe=False: ConfigDict itself refuses some type changes; we test what is below.
  config = ml_collections.ConfigDict(values, type_safe=False)
  workdir = tmp_path_factory.mktemp('never_used')
  with pytest.raises(errors.ConfigError, match=f'^config.{field}='):
    train.train_and_evaluate(config, workdir)
  assert not any(workdir.iterdir())  # Nothing written.


@settings(max_examples=300, deadline=None)
@given(kernel=st.integers(1, 12), padding=st.integers(0, 6), stride=st.integers(1, 4),
       window=st.integers(1, 5), pool_stride=st.integers(1, 5),
       blocks=st.integers(1, 4), height=st.integers(1, 40))
def test_any_geometry_fits_or_is_refused_naming_its_fields(kernel, padding, stride, window,
                                                          pool_stride, blocks, height):
  config = default.get_config().to_dict()
  config.update(kernel_size=kernel, padding=padding, conv_stride=stride,
                pool_window=window, pool_stride=pool_stride,
                conv_features=(4,) * blocks)
  try:
    table = options.validate_geometry(config, (height, height, 1), 10)
  except errors.ConfigError as e:
    message = str(e)
    assert '\n' not in message
    assert 'config.kernel_size=' in message or 'config.pool_window=' in message
    return
  flatten = next(r for r in table if r.name == 'flatten').output_shape[0]
  side = math.isqrt(flatten // 4)
  assert side >= 1 and side * side * 4 == flatten
