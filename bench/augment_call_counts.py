"""LLM calls per kept MUSIC pair from the algorithm alone: a scripted simulator that always answers usably.

    .venv/bin/python bench/augment_call_counts.py --seeds 200 --turns 5

Prints calls per kept pair for the default (d uniform, contrast at every turn >= d), contrast only at d,
and the final-turn-only ablation. Runs in a second; no model is involved.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from augment.config import MusicConfig  # noqa: E402
from augment.run import run_music  # noqa: E402
from augment.turns import MusicBackends  # noqa: E402
from bench.results import record  # noqa: E402
from chat.backends.scripted import ScriptedBackend  # noqa: E402
from chat.conversation import content_id  # noqa: E402


def ideal_simulator(messages: list[dict[str, str]], params: dict) -> str:
    """A usable reply for every role; content depends on the request, so branches differ after d. The contrastive
    step asks for a JSON object (`response_format`, validated by the scripted backend): it gets one."""
    if params["response_format"]:
        return json.dumps({"swapped_instruction": f"a different request {content_id(messages)[:8]}", "reason": "-"})
    return f"reply {content_id(messages)[:8]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    variants = {"d uniform, contrast at every turn >= d": {},
                "d uniform, contrast only at d": {"contrast_scope": "divergence_only"},
                "final-turn-only ablation": {"divergence": "final"}}
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "prompts.jsonl"
        source.write_text("".join(json.dumps({"id": f"p{i}", "messages": [{"role": "user", "content": f"Task {i}"}]})
                                  + "\n" for i in range(args.seeds)))
        print("| config | kept | calls per kept pair |\n|---|---|---|")
        calls_per_kept = {}
        for index, (name, values) in enumerate(variants.items()):
            backend = ScriptedBackend(ideal_simulator)
            result = run_music(source, Path(directory) / f"out{index}.jsonl", MusicConfig(turns=args.turns, **values),
                               backends=MusicBackends(backend, backend, backend), progress=False, handle_sigint=False)
            cost = result.per_kept() or {"llm_calls": 0.0}
            calls_per_kept[name] = cost["llm_calls"]
            print(f"| {name} | {result.kept} | {cost['llm_calls']:.2f} |")
    default_name, default_calls = next(iter(calls_per_kept.items()))
    for name, calls in list(calls_per_kept.items())[1:]:
        ratio = calls / default_calls if default_calls else None
        if ratio is not None:
            print(f"{name} vs {default_name}: {ratio:.3f}x calls per kept pair")
        record(f"MUSIC LLM calls per kept pair, T={args.turns}: {name} vs default (scripted simulator)",
               baseline=f"default: {default_name}", ratio=ratio, target="none", met=None,
               details={"summary": f"{calls:.2f} vs {default_calls:.2f} calls per kept pair, {args.seeds} seeds",
                        "calls_per_kept_pair": {k: round(v, 4) for k, v in calls_per_kept.items()}})


if __name__ == "__main__":
    main()
