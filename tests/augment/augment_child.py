"""Child process for the kill test: `augment music` over N prompts with a slow scripted simulator.

Usage: python augment_child.py PROMPTS OUTPUT [--delay-s S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from augment_helpers import FakeSimulator, config, fake_backends  # noqa: E402

from augment.run import run_music  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("prompts")
    parser.add_argument("output")
    parser.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args()
    simulator = FakeSimulator()

    def slow(messages, params):
        time.sleep(args.delay_s)  # blocks the loop: seeds finish one by one, at a pace the test can kill
        return simulator(messages, params)

    backends, _ = fake_backends(slow)
    result = run_music(args.prompts, args.output, config(turns=2, divergence="final", concurrency=2),
                       backends=backends, progress=False, handle_sigint=False)
    print(f"kept {result.kept} skipped {result.summary.skipped_existing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
