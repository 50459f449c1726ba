"""Where results came from: the code version a results file records."""

import hashlib
import importlib.metadata
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


def test_lock_status_names_what_differs_from_the_lock(tmp_path):
  numpy_version = importlib.metadata.version('numpy')
  lock = tmp_path / 'requirements.lock'
  lock.write_text('# header\n'
                  f'numpy=={numpy_version}\n    # via cnn-jax\n'
                  "absl-py==0.0.1 ; python_full_version >= '3.0'\n"
                  "scipy==0.0.2 ; python_full_version < '3.0'\n"  # Not for this Python.
                  'not-a-package-here==1.0\n')
  status = provenance.lock_status(lock)
  assert status.startswith('lock ') and len(status.split(',')[0]) == len('lock ') + 12
  assert 'absl-py ' in status and '(lock: 0.0.1)' in status
  assert 'not-a-package-here none (lock: 1.0)' in status
  assert 'numpy' not in status and 'scipy' not in status
  lock.write_text(f'numpy=={numpy_version}\n')
  assert provenance.lock_status(lock) == (
      f"lock {hashlib.sha256(lock.read_bytes()).hexdigest()[:12]}")  # Nothing differs.
  assert provenance.lock_status(tmp_path / 'missing') == 'no lock'
