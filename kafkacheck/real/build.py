"""The broker's jars, resolved by Maven from the project's build file, and the Java
driver compiled against them; both cached per Kafka release.

Why Maven and not a downloaded tarball: Maven Central is what these machines reach, the
build file pins what is run (``kafka.version`` is the only variable), and the same jars
give both the broker (``kafka.Kafka``) and the client (``kafka-clients``) the model follows.

Cache layout, under ``~/.cache/kafkacheck/`` (or ``$KAFKACHECK_CACHE``)::

    kafka-<version>/lib/*.jar          mvn dependency:copy-dependencies
    kafka-<version>/resolved           stamp: the build file's digest when resolved
    kafka-<version>/driver-<digest>/   javac output for this driver source

A second run finds the stamp and never calls Maven, so it works offline.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import attrs

from kafkacheck.real.environment import RealEnvironmentError, require_tool
from kafkacheck.real.procs import cache_root

JAVA_DIR = Path(__file__).resolve().parent / "java"
POM = JAVA_DIR / "pom.xml"
SOURCES = sorted((JAVA_DIR / "src" / "main" / "java").rglob("*.java"))
DRIVER_CLASS = "kafkacheck.real.Driver"

# Newest first.  The default release is the first of these that resolves; 3.9.1 is the
# supported 3.x (the last 3.x line, which still formats KRaft storage the same way).
DEFAULT_VERSIONS = ("4.4.0", "4.3.1", "4.2.1", "4.1.1", "4.0.0")
SUPPORTED_3X = "3.9.1"

Progress = Callable[[str], None]


@attrs.frozen
class Artifacts:
    version: str
    lib: Path
    driver: Path

    def classpath(self, with_driver: bool = True) -> str:
        parts = [f"{self.lib}/*"] + ([str(self.driver)] if with_driver else [])
        return ":".join(parts)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def _digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in paths:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def version_dir(version: str) -> Path:
    return cache_root() / f"kafka-{version}"


def is_resolved(version: str) -> bool:
    stamp = version_dir(version) / "resolved"
    return stamp.exists() and stamp.read_text().strip() == _digest(POM, extra=version)


def resolve_jars(version: str, *, offline: bool = False,
                 progress: Progress | None = None) -> Path:
    """The directory of the release's runtime jars, calling Maven only if not cached."""
    target = version_dir(version)
    lib = target / "lib"
    if is_resolved(version) and any(lib.glob("kafka_2.13-*.jar")):
        return lib
    mvn = require_tool("mvn", "Maven is needed once per Kafka release to resolve the "
                              "broker's jars (apt-get install maven)")
    if progress:
        progress(f"resolving org.apache.kafka:kafka_2.13:{version} with Maven "
                 f"(cached in {target})")
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / "lib.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    argv = [mvn, "-B", "-q", "-f", str(POM), f"-Dkafka.version={version}",
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}"]
    if offline:
        argv.insert(1, "-o")
    result = subprocess.run(argv, capture_output=True, text=True, cwd=target)
    if result.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        lines = [ln for ln in (result.stdout + result.stderr).splitlines()
                 if "ERROR" in ln or "Could not" in ln]
        reason = lines[0].replace("[ERROR]", "").strip() if lines else "no kafka_2.13 jar"
        raise RealEnvironmentError(
            f"the jars of Kafka {version} are not resolvable with Maven: {reason[:300]}")
    shutil.rmtree(lib, ignore_errors=True)
    tmp.replace(lib)
    (target / "resolved").write_text(_digest(POM, extra=version) + "\n")
    shutil.rmtree(target / "target", ignore_errors=True)
    return lib


def compile_driver(version: str, lib: Path) -> Path:
    """javac the driver against this release's kafka-clients (cached by source digest)."""
    out = version_dir(version) / f"driver-{_digest(*SOURCES, extra=version)}"
    if (out / "kafkacheck" / "real" / "Driver.class").exists():
        return out
    javac = require_tool("javac", "a Java 17 JDK is needed to compile kafkacheck's client "
                                  "driver (apt-get install openjdk-17-jdk-headless)")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    result = subprocess.run([javac, "-nowarn", "-encoding", "UTF-8", "-d", str(tmp), "-cp",
                             f"{lib}/*", *map(str, SOURCES)], capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        first = next((ln for ln in result.stderr.splitlines() if "error" in ln),
                     result.stderr.strip()[:300])
        raise RealEnvironmentError(f"compiling the Java driver against Kafka {version} "
                                   f"failed: {first}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


def prepare(version: str | None, *, offline: bool = False,
            progress: Progress | None = None) -> Artifacts:
    """Jars and driver for ``version``, or for the newest default 4.x release that
    resolves when ``version`` is None."""
    require_tool("java", "Java 17 is needed to run the Kafka brokers and clients "
                         "(apt-get install openjdk-17-jdk-headless)")
    candidates = [version] if version else list(DEFAULT_VERSIONS)
    cached = [v for v in candidates if is_resolved(v)]
    errors = []
    for candidate in (cached[:1] if cached else candidates):
        try:
            lib = resolve_jars(candidate, offline=offline, progress=progress)
        except RealEnvironmentError as error:
            errors.append(str(error))
            continue
        return Artifacts(candidate, lib, compile_driver(candidate, lib))
    raise RealEnvironmentError(errors[0] if len(errors) == 1 else
                               f"no Kafka 4.x release resolves ({errors[0]})")
