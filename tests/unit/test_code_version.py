"""The code version pins the code: a clean commit, or the digest of the code's content."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mlops.core import code_version as module


@pytest.fixture
def project(tmp_path, monkeypatch):
    for folder, text in (("dags", "dag = 1\n"), ("include", "train = 1\n"), ("plugins", "plugin = 1\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "code.py").write_text(text)
    monkeypatch.setattr(module, "PROJECT_ROOT", tmp_path)
    return tmp_path


GIT = shutil.which("git")


def git(project, *argv: str) -> str:
    return subprocess.run([GIT, "-C", str(project), *argv], check=True, capture_output=True, text=True).stdout


def test_without_git_the_version_is_the_digest_of_the_code(project, monkeypatch):
    monkeypatch.setattr(module.shutil, "which", lambda name: None)

    assert module.code_version() == f"content-{module.content_digest()}"


def test_the_content_digest_changes_with_any_code_file_and_only_then(project):
    before = module.content_digest()
    (project / "README.md").write_text("not code")
    (project / "plugins" / "__pycache__").mkdir()
    (project / "plugins" / "__pycache__" / "code.cpython-311.pyc").write_bytes(b"compiled")
    assert module.content_digest() == before

    (project / "include" / "code.py").write_text("train = 2\n")
    assert module.content_digest() != before


@pytest.mark.skipif(GIT is None, reason="needs git")
def test_a_clean_checkout_is_named_by_its_commit_and_a_changed_one_by_its_content(project):
    git(project, "init", "-q")
    git(project, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", ".")
    git(project, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "code")
    commit = git(project, "rev-parse", "--short=12", "HEAD").strip()
    assert module.code_version() == commit

    (project / "plugins" / "new.py").write_text("x = 1\n")  # untracked code counts too
    assert module.code_version() == f"content-{module.content_digest()}"
