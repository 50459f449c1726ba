"""The nuisance search of a sweep: the rules that choose and grow it, pure, and a sweep
that tunes each configuration's learning rate on validation before its seeds train."""

import json

import pytest

from cnn_jax import errors, results, sweep, tuning


def test_the_grid_grows_past_each_edge_the_best_score_sits_at_by_its_own_ratio():
  assert tuning.grown({1e-3: 0.9, 3e-3: 0.95, 1e-2: 0.97}) == [1e-3, 3e-3, 1e-2, 0.0333]
  assert tuning.grown({1e-3: 0.9, 1e-2: 0.8}) == [1e-4, 1e-3, 1e-2]
  assert tuning.grown({1e-3: 0.9, 3e-3: 0.95, 1e-2: 0.9}) == [1e-3, 3e-3, 1e-2]  # Done.
  assert tuning.grown({5e-3: 0.9}) == [5e-4, 5e-3, 0.05]
  # A flat curve (every rate stuck at chance) has bracketed nothing: both edges grow.
  assert tuning.grown({3e-3: 0.1124, 1e-2: 0.1124, 3e-2: 0.1124}) == [9e-4, 3e-3, 1e-2,
                                                                         3e-2, 0.09]
  # An edge tied with the middle grows; the other, worse, does not.
  assert tuning.grown({1e-3: 0.9, 3e-3: 0.97, 1e-2: 0.97}) == [1e-3, 3e-3, 1e-2, 0.0333]


def test_a_chosen_value_is_flagged_where_the_best_score_is_still_at_an_edge():
  assert tuning.chosen_text({'value': 3e-3, 'curve': [[1e-3, .9], [3e-3, .97], [1e-2, .9]]}
                            ) == '0.003'
  assert tuning.chosen_text({'value': 1e-2, 'curve': [[1e-3, .9], [1e-2, .95]]}) == (
      '0.01 (at the edge)')
  # Flat: the middle was chosen, but nothing was bracketed.
  assert tuning.chosen_text({'value': 1e-2, 'curve': [[1e-3, .1], [1e-2, .1], [1e-1, .1]]}
                            ) == '0.01 (at the edge)'
  assert tuning.chosen_text({'value': 1e-2, 'curve': [[1e-2, .9]]}) == '0.01'


def test_the_best_score_wins_and_of_equals_the_one_nearest_the_middle():
  assert tuning.choose({1e-3: 0.95, 3e-3: 0.97, 1e-2: 0.96}) == 3e-3
  assert tuning.choose({1e-3: 0.97, 3e-3: 0.97, 1e-2: 0.97}) == 3e-3
  assert tuning.choose({1e-3: 0.90, 3e-3: 0.97, 1e-2: 0.97, 3e-2: 0.9}) == 3e-3
  assert tuning.choose({1e-3: 0.5, 1e-2: 0.9}) == 1e-2


def test_a_failed_or_empty_tuning_run_scores_as_the_worst(tmp_path):
  good, failed, empty = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
  for d in (good, failed, empty):
    d.mkdir()
  history = [{'epoch': 1, 'validation_accuracy': 0.8}, {'epoch': 2,
                                                        'validation_accuracy': 0.9}]
  (good / 'metrics.json').write_text(json.dumps({'history': history}))
  (failed / 'metrics.json').write_text(json.dumps({'history': history, 'failed': {
      'reason': 'non-finite loss'}}))
  assert tuning.score([good]) == (0.9, 1)
  assert tuning.score([good, failed, empty]) == (pytest.approx(0.3), 3)


@pytest.mark.parametrize('spec, words', [
    ({'field': 'sead', 'values': [1e-3]}, "SEARCH.field='sead' is invalid"),
    ({'field': 'learning_rate', 'values': [1e-2, 1e-3]}, 'increasing order'),
    ({'field': 'learning_rate', 'values': [0.0, 1e-3]}, 'positive numbers'),
    ({'field': 'learning_rate', 'values': [1e-3], 'seeds': 0}, 'SEARCH.seeds=0'),
    ({'field': 'learning_rate', 'values': [1e-3], 'overrides': {'learning_rate': 1}},
     "sets 'learning_rate'"),
    ({'field': 'learning_rate', 'values': [1e-3], 'trials': 3}, r"has \['trials'\]"),
])
def test_a_bad_search_is_one_line_naming_what_is_wrong(spec, words):
  with pytest.raises(errors.ConfigError, match=words):
    tuning.Search.parse(spec)


def test_a_sweep_tunes_each_configuration_then_trains_its_seeds_at_the_choice(
    small_config, tmp_path):
  small_config.num_epochs = 1
  grid = [{'dropout_placement': 'none'}, {'dropout_placement': 'before_fc1'}]
  # 1e-5 learns next to nothing in 16 steps: the winner sits at the top edge, so the
  # grid grows (×10) once, as far as `extend` lets it.
  search = tuning.Search('learning_rate', (1e-5, 1e-4), seeds=1, extend=1,
                         overrides={'max_train_examples': 512})
  workdir = tmp_path / 'sweep'
  outcomes = sweep.run_sweep('t', small_config, grid, grid[1], range(2), workdir,
                             search=search)
  assert [o.status for o in outcomes] == ['trained'] * 4
  meta = json.loads((workdir / sweep.SWEEP_FILE).read_text())
  assert meta['search']['values'] == [1e-5, 1e-4]
  for key in ('dropout_placement=none', 'dropout_placement=before_fc1'):
    tuned = meta['tuned'][key]
    assert [v for v, _ in tuned['curve']] == [1e-5, 1e-4, 1e-3]
    scores = dict(map(tuple, tuned['curve']))
    assert tuned['value'] == max(scores, key=scores.get)
    assert scores[1e-3] > scores[1e-5]
    # The seeds trained at the chosen value, under the configuration's own name.
    for seed in (0, 1):
      run_dir = workdir / f'{key},seed={seed}'
      config = json.loads((run_dir / 'config.json').read_text())
      assert config['learning_rate'] == tuned['value']
      assert config['max_train_examples'] == small_config.max_train_examples
      assert json.loads((run_dir / sweep.RUN_FILE).read_text())['tuned'] == {
          'learning_rate': tuned['value']}
    # Tuning runs: one seed each, on the search's own budget.
    configs = [json.loads(p.read_text()) for p in (workdir / tuning.TUNING_DIR).glob(
        '*/learning_rate=*,seed=0/config.json')]
    mine = [c for c in configs if c['dropout_placement'] == key.split('=')[1]]
    assert sorted(c['learning_rate'] for c in mine) == [1e-5, 1e-4, 1e-3]
    assert {c['max_train_examples'] for c in mine} == {512}
  # The results page names each configuration's value and its tuning curve.
  page, _ = results.write_results(workdir)
  assert 'learning_rate tuned on validation' in page
  assert f"{meta['tuned']['dropout_placement=none']['value']:g}" in page
  # A rerun trains nothing, tuning included.
  again = sweep.run_sweep('t', small_config, grid, grid[1], range(2), workdir,
                          search=search)
  assert [o.status for o in again] == ['skipped'] * 4


def test_a_field_is_either_compared_or_tuned(small_config, tmp_path):
  search = tuning.Search('learning_rate', (1e-3, 1e-2))
  with pytest.raises(errors.ConfigError, match='sets learning_rate, which its SEARCH tunes'):
    sweep.run_sweep('t', small_config, [{'learning_rate': 1e-3}], {}, range(1), tmp_path,
                    search=search)
