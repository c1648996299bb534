"""Errors when an engine or a tool is missing (no network, no stack)."""

import shutil
import subprocess

import pytest

from cdclake.errors import NotInstalledError
from cdclake.install import jvm


def test_java_missing(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NotInstalledError, match="java not found on PATH; install a Java 17 JDK"):
        jvm.java_bin()


def test_maven_missing(monkeypatch, tmp_path):
    monkeypatch.setenv(jvm.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", "/usr/bin/nonexistent")
    with pytest.raises(NotInstalledError, match=r"mvn not found on PATH; install Maven"):
        jvm.resolve("debezium", progress=lambda m: None)


def test_jars_missing_says_run_setup(monkeypatch, tmp_path):
    monkeypatch.setenv(jvm.CACHE_ENV, str(tmp_path))
    with pytest.raises(NotInstalledError, match="run `cdclake setup`"):
        jvm.classpath("kafka")


def test_maven_central_unreachable(monkeypatch, tmp_path):
    """A real Maven run against a mirror that refuses connections, with an empty local repo."""
    settings = tmp_path / "settings.xml"
    settings.write_text(
        "<settings><localRepository>%s</localRepository><mirrors><mirror><id>down</id>"
        "<mirrorOf>*</mirrorOf><url>http://127.0.0.1:9/maven2</url></mirror></mirrors></settings>"
        % (tmp_path / "repo"))
    monkeypatch.setenv(jvm.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(jvm, "MAVEN_EXTRA_ARGS", ["-s", str(settings)])
    with pytest.raises(jvm.MavenError) as err:
        jvm.resolve("debezium", progress=lambda m: None)
    assert "could not reach Maven Central" in str(err.value)
    assert not (tmp_path / "cache" / "debezium" / ".pom.sha256").exists()


def test_setup_is_idempotent_and_offline_after_first_run(monkeypatch, tmp_path):
    """A copy of the real cache: a second resolve is a no-op that never runs Maven. A copy, so
    compiling this checkout's Java sources never replaces the jars another checkout's stack uses."""
    cache = tmp_path / "jvm"
    if jvm.cache_root().exists():
        shutil.copytree(jvm.cache_root(), cache, symlinks=True)
    monkeypatch.setenv(jvm.CACHE_ENV, str(cache))
    for engine in jvm.ENGINES:
        jvm.resolve(engine, progress=lambda m: None)

    def no_maven(*args, **kwargs):
        raise AssertionError("Maven ran although the cache was complete")

    monkeypatch.setattr(subprocess, "run", no_maven)
    assert [jvm.resolve(engine) for engine in jvm.ENGINES] == [False] * len(jvm.ENGINES)
