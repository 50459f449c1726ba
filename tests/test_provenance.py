"""Where results came from: the code version a results file records."""

import subprocess

from cnn_jax import provenance


def test_code_version_is_dirty_for_changed_code_not_for_rewritten_results(
    tmp_path, monkeypatch):
  def git(*args):
    subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t', *args],
                   cwd=tmp_path, check=True, capture_output=True)
  (tmp_path / 'cnn_jax').mkdir()
  (tmp_path / 'results').mkdir()
  (tmp_path / 'cnn_jax' / 'train.py').write_text('a = 1\n')
  (tmp_path / 'results' / 'REPORT.md').write_text('old\n')
  (tmp_path / 'README.md').write_text('old\n')
  git('init', '-q')
  git('add', '.')
  git('commit', '-qm', 'x')
  monkeypatch.setattr(provenance, 'REPO', tmp_path)
  clean = provenance.code_version()
  assert len(clean) == 12 and not clean.endswith('-dirty')
  # What the study writes (results/, the README's table) is not code.
  (tmp_path / 'results' / 'REPORT.md').write_text('new\n')
  (tmp_path / 'README.md').write_text('new\n')
  (tmp_path / 'untracked.py').write_text('b = 2\n')
  assert provenance.code_version() == clean
  (tmp_path / 'cnn_jax' / 'train.py').write_text('a = 2\n')
  assert provenance.code_version() == clean + '-dirty'
  monkeypatch.setattr(provenance, 'REPO', tmp_path / 'cnn_jax' / 'nowhere')
  assert provenance.code_version() == 'unknown'
