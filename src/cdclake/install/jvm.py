"""The JVM engines (Kafka, Connect, Debezium, Spark extras), resolved by Maven from the
pinned poms under ``jvm/`` into a cache outside the repository.

A stamp beside each engine's jars records the hash of the pom it came from, so a second
``setup`` is a no-op and never touches the network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cdclake.errors import CdclakeError, ExitCode, NotInstalledError

CACHE_ENV = "CDCLAKE_JVM_CACHE"
POM_ROOT = Path(__file__).resolve().parents[3] / "jvm"  # in a source checkout


@dataclass(frozen=True)
class Engine:
    name: str
    # Where the jars go, relative to the engine's cache dir (Connect wants plugin/<name>/*.jar).
    subdir: str = ""
    # Our own Java sources beside the pom, compiled into <jars>/cdclake-<name>.jar.
    sources: tuple[str, ...] = ()

    @property
    def pom(self) -> Path:
        return POM_ROOT / self.name / "pom.xml"

    @property
    def source_files(self) -> list[Path]:
        """Java sources and resources (META-INF/services manifests, for Connect's plugin discovery)."""
        return sorted(f for d in self.sources for f in (POM_ROOT / self.name / d).rglob("*") if f.is_file())

    @property
    def home(self) -> Path:
        return cache_root() / self.name

    @property
    def jars(self) -> Path:
        return self.home / self.subdir if self.subdir else self.home


ENGINES = {
    "kafka": Engine("kafka"),
    # src/: cdclake's Connect transforms, io.cdclake.connect.RouteByTable (each table's topic),
    # TruncateAsChange (TRUNCATE as a flat change) and FlatChange (every other change flattened)
    "debezium": Engine("debezium", "debezium-connector-postgres", sources=("src",)),
    "spark": Engine("spark"),
    "jmx": Engine("jmx"),  # the Prometheus JMX exporter agent (monitoring.jmx_exporter)
}


# Extra Maven arguments, e.g. ["-s", "settings.xml"] for a mirror (tests point it at a dead one).
MAVEN_EXTRA_ARGS: list[str] = []


class MavenError(CdclakeError):
    exit_code = ExitCode.NOT_INSTALLED


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cdclake" / "jvm")


def java_home() -> str | None:
    return os.environ.get("JAVA_HOME")


def java_bin() -> str:
    home = java_home()
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise NotInstalledError("java not found on PATH; install a Java 17 JDK "
                                "(apt-get install openjdk-17-jdk-headless) or set JAVA_HOME")
    return found


def classpath(engine: str) -> str:
    """``<dir>/*`` for a JVM classpath, after checking the jars are there."""
    return str(installed(engine) / "*")


def installed(engine: str) -> Path:
    target = ENGINES[engine]
    if not _stamp(target).exists() or not any(target.jars.glob("*.jar")):
        raise NotInstalledError(f"the {engine} jars are not in {target.jars}; run `cdclake setup` "
                                "(or `make setup`) once with network access to Maven Central")
    return target.jars


def resolve(engine: str, progress=print) -> bool:
    """Copy an engine's pinned jars into the cache. Returns True if anything was fetched."""
    target = ENGINES[engine]
    digest = _digest(target)
    stamp = _stamp(target)
    if stamp.exists() and stamp.read_text().strip() == digest and any(target.jars.glob("*.jar")):
        return False
    mvn = shutil.which("mvn")
    if not mvn:
        raise NotInstalledError("mvn not found on PATH; install Maven (apt-get install maven)")
    java_bin()
    progress(f"resolving {engine} jars with Maven into {target.jars} ...")
    if target.jars.exists():
        shutil.rmtree(target.jars)
    cmd = [mvn, "-B", "-q", "-Dstyle.color=never", *MAVEN_EXTRA_ARGS, "-f", str(target.pom), "dependency:copy-dependencies",
           f"-Dcdclake.jvm.dir={cache_root()}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise MavenError(_maven_failure(engine, result.stdout + result.stderr))
    if target.sources:
        _compile(target, progress)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    return True


def _digest(target: Engine) -> str:
    digest = hashlib.sha256(target.pom.read_bytes())
    for source in target.source_files:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _compile(target: Engine, progress) -> None:
    """javac our sources against the Kafka jars, into ``<jars>/cdclake-<engine>.jar``."""
    home = java_home()
    javac = str(Path(home) / "bin" / "javac") if home and (Path(home) / "bin" / "javac").exists() \
        else shutil.which("javac")
    if not javac:
        raise NotInstalledError("javac not found; install a Java 17 JDK (apt-get install openjdk-17-jdk-headless)")
    progress(f"compiling cdclake's {target.name} extensions ...")
    with tempfile.TemporaryDirectory() as build:
        java = [str(f) for f in target.source_files if f.suffix == ".java"]
        cmd = [javac, "--release", "17", "-d", build, "-cp", classpath("kafka"), *java]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise MavenError(f"javac failed on {target.source_files[0].parent}:\n{result.stderr.strip()[-2000:]}")
        with zipfile.ZipFile(target.jars / f"cdclake-{target.name}.jar", "w") as jar:
            for path in sorted(Path(build).rglob("*.class")):
                jar.write(path, path.relative_to(build).as_posix())
            for root in (POM_ROOT / target.name / d for d in target.sources):
                for path in sorted(root.rglob("META-INF/**/*")):
                    if path.is_file():
                        jar.write(path, path.relative_to(root).as_posix())


def _stamp(target: Engine) -> Path:
    return target.home / ".pom.sha256"


def _maven_failure(engine: str, output: str) -> str:
    tail = "\n".join(output.strip().splitlines()[-15:])
    unreachable = ("UnknownHostException", "Could not transfer", "Connection refused", "Network is unreachable",
                   "connect timed out", "No plugin found for prefix")  # the last: not even the plugin came
    if any(s in output for s in unreachable):
        return (f"Maven could not reach Maven Central to fetch the {engine} jars; check the network or a "
                f"proxy in ~/.m2/settings.xml, then rerun `cdclake setup`\n{tail}")
    return f"Maven failed to resolve the {engine} jars from {ENGINES[engine].pom}:\n{tail}"
