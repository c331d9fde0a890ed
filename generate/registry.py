"""The generators registry (`turnwise list generators`): name -> the function that runs a generator."""

from __future__ import annotations

from chat.registry import registry

#: generator name -> `run_*(input_path, output, config, **options)`; filled by the generator modules.
GENERATORS = registry("generators", "generator")
