"""`turnwise run --dry-run`: the plan, and LLM calls and tokens each stage will spend, before anything runs.

Call counts follow each method's algorithm exactly (re-asks excluded in `calls`, all allowed re-asks included in
`max_calls`). Tokens: completion tokens are bounded by max_calls x max_tokens; prompt tokens are a rough figure,
calls x (mean input size + ROLE_PROMPT_TOKENS), since real prompts grow with the conversation history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat.errors import ConfigError, TurnwiseError
from chat.token_estimate import approx_tokens
from pipeline.stages import StageContext

#: Rough size of a role's instructions (system prompt + template text) in tokens.
ROLE_PROMPT_TOKENS = 300


@dataclass
class Estimate:
    """Expected LLM calls of a stage, their upper bound with every re-ask, and token figures; `items` describes
    the stage's input, `count` is its number of items when known."""

    items: str = ""
    count: int | None = None
    calls: float = 0.0
    max_calls: float = 0.0
    completion_tokens_max: int = 0
    prompt_tokens: int = 0
    note: str = ""

    def add(self, other: "Estimate") -> None:
        self.calls += other.calls
        self.max_calls += other.max_calls
        self.completion_tokens_max += other.completion_tokens_max
        self.prompt_tokens += other.prompt_tokens


def music_calls(turns: int, seed_turns: int, d: int, scope: str, reuse_seed_rejected: bool) -> tuple[int, int]:
    """(calls, contrast steps) of one MUSIC pair with divergence turn d (docs/methods.md, MUSIC; augment/music.py):
    one shared user turn per turn <= d and one per branch after d; one shared answer per turn < d; from d on the
    chosen answer plus either a contrast step (swap instruction + answer: 2 calls) or a normal rejected answer."""
    calls = contrasts = 0
    for turn in range(seed_turns, turns + 1):
        if turn > seed_turns:
            calls += 1 if turn <= d else 2
        if turn < d:
            calls += 1
        elif turn == d and reuse_seed_rejected and d == seed_turns:
            continue
        elif turn == d or scope == "from_divergence":
            calls += 3
            contrasts += 1
        else:
            calls += 2
    return calls, contrasts


def divergence_turns(config: Any) -> list[int]:
    if config.divergence == "fixed":
        return [int(config.divergence_turn)]
    if config.divergence == "final":
        return [config.turns]
    return list(range(config.seed_turns, config.turns + 1))


def count_rows(source: str, limit: int | None = None) -> tuple[int | None, float]:
    """Rows of an input (None when it cannot be read here, e.g. a hub id offline) and their mean size in tokens
    (chat/token_estimate.py)."""
    from chat.formats import read_records

    try:
        records = list(read_records(source, on_error="skip", limit=limit))
    except (TurnwiseError, OSError, ValueError):
        return None, 0.0
    sizes = [approx_tokens(str(getattr(record, "to_dict", lambda: record)())) for record in records]
    return len(records), (sum(sizes) / len(sizes) if sizes else 0.0)


def with_tokens(estimate: Estimate, max_tokens: int, input_tokens: float) -> Estimate:
    estimate.completion_tokens_max = int(estimate.max_calls * max_tokens)
    estimate.prompt_tokens = int(estimate.calls * (input_tokens + ROLE_PROMPT_TOKENS))
    return estimate


def estimate_augment(ctx: StageContext) -> Estimate:
    from augment.config import MusicConfig

    config = ctx.options("augment", MusicConfig)
    draws = [music_calls(config.turns, config.seed_turns, d, config.contrast_scope, config.reuse_seed_rejected)
             for d in divergence_turns(config)]
    per_seed = sum(calls for calls, _ in draws) / len(draws)
    per_seed_max = sum(calls + contrasts * config.max_reasks for calls, contrasts in draws) / len(draws)
    rows, size = count_rows(ctx.input_path("augment", "seeds"), config.limit)
    if rows is None:
        return Estimate(items="seeds: unknown here",
                        note=f"{per_seed:.2f} calls per seed at T={config.turns} (seed input not readable here)")
    estimate = Estimate(items=f"{rows} seeds", count=rows, calls=rows * per_seed, max_calls=rows * per_seed_max,
                        note=f"{per_seed:.2f} calls per seed at T={config.turns}")
    return with_tokens(estimate, config.max_tokens, size + config.turns * config.max_tokens / 2)


def eval_pairs(ctx: StageContext) -> tuple[int | None, str]:
    """Held-out pairs the judge stage will see: counted when mix has run, else estimated from its inputs."""
    from augment.mix import DEFAULT_EVAL_FRACTION

    if ctx.eval_split.is_file():
        return count_rows(str(ctx.eval_split))[0], ""
    section = ctx.config.sections["mix"]
    original = section.get("original") or ctx.config.sections["augment"].get("seeds")
    rows, _ = count_rows(str(original)) if original else (None, 0.0)
    if rows is None:
        return None, ""
    fraction = ctx.value("mix", "eval_fraction", DEFAULT_EVAL_FRACTION, float)
    return round((rows + (estimate_augment(ctx).count or 0)) * fraction), "~"


def estimate_judge(ctx: StageContext) -> Estimate:
    from judge.config import JudgeConfig

    if not ctx.config.sections["judge"]:
        return Estimate(items="no judge section", note="skipped")
    config = ctx.options("judge", JudgeConfig)
    pairs, approx = eval_pairs(ctx)
    if pairs is None and config.limit is None:
        return Estimate(items="pairs: unknown here")
    if config.limit is not None:
        pairs, approx = (config.limit, "<=") if pairs is None else (min(pairs, config.limit), approx)
    orders = 2 if config.judge == "llm-pairwise" else 1
    estimate = Estimate(items=f"{approx}{pairs} pairs", calls=pairs * orders,
                        max_calls=pairs * orders * (1 + config.max_reasks),
                        note=f"{config.judge}, both orders; the RM judge makes no LLM calls")
    return with_tokens(estimate, config.max_tokens, 200)


def estimate_generate(ctx: StageContext) -> Estimate:
    """Each generator the section names, by its registered `expected_calls` (generate.registry)."""
    from pipeline.stages import generate_section

    section, generators = generate_section(ctx)
    if not section:
        return Estimate(items="no generate section", note="skipped")
    total = Estimate()
    notes = []
    inputs: dict[str, str] = {}
    for generator in generators:
        # the RM rm_train will have written: it changes the calls (SeDi scores the seed tasks with it)
        config = ctx.options("generate", generator.config, generator.section, rm=str(ctx.reward_model))
        path = ctx.input_path("generate", generator.input.key)
        inputs.setdefault(path, generator.input.name)
        rows, size = count_rows(path, config.limit)
        expected = generator.expected_calls(config, rows, size)
        if expected is not None:
            part = Estimate(calls=expected.calls, max_calls=expected.max_calls)
            total.add(with_tokens(part, expected.max_tokens, expected.input_tokens))
            notes.append(expected.note)
    total.items = "; ".join(f"{count_rows(path)[0]} {kind}" for path, kind in inputs.items())
    total.note = "; ".join(notes)
    return total


def bon_calls(turns: int, n_values: list[int]) -> tuple[int, int, int]:
    """(policy, simulated-user, judge) requests of one prompt when the two RMs' trajectories part after turn 1
    (judge/bon.py): turn 1 samples max(N) candidates once for every N (candidate i is the same request
    everywhere); each later turn samples N per trajectory, 2 trajectories per N; each trajectory has T - 1
    user turns; the judge compares one pair per N in both orders. Shared requests make real runs cheaper."""
    policy = max(n_values) + (turns - 1) * sum(2 * n for n in n_values)
    return policy, 2 * len(n_values) * (turns - 1), 2 * len(n_values)


def estimate_bon(ctx: StageContext) -> Estimate:
    from judge.bon import BonConfig
    from judge.config import JudgeConfig

    if not ctx.config.sections["bon"]:
        return Estimate(items="no bon section", note="skipped")
    config = ctx.options("bon", BonConfig)
    config.validate()
    judge = ctx.options("bon", JudgeConfig, "judge")
    policy, user, judged = bon_calls(config.turns, config.n_values)
    note = (f"per prompt <= {policy} policy + {user} user + {judged} judge calls (T={config.turns}, "
            f"N in {','.join(map(str, config.n_values))}); fewer while the two RMs pick alike")
    try:
        rows, size = count_rows(ctx.input_path("bon", "prompts"), config.limit)
    except ConfigError as exc:
        return Estimate(items="prompts: not found", note=f"{note}; {exc}")
    if rows is None:
        return Estimate(items="prompts: unknown here", note=note)
    estimate = Estimate(items=f"{rows} prompts", count=rows, calls=rows * (policy + user + judged),
                        max_calls=rows * (policy + user * config.user_attempts + judged * (1 + judge.max_reasks)),
                        note=note)
    estimate.completion_tokens_max = rows * (policy * config.max_tokens
                                             + user * config.user_attempts * config.user_max_tokens
                                             + judged * (1 + judge.max_reasks) * judge.max_tokens)
    history = size + config.turns * (config.max_tokens + config.user_max_tokens) / 2
    estimate.prompt_tokens = int(rows * ((policy + user) * history
                                         + judged * (2 * history + ROLE_PROMPT_TOKENS)))
    return estimate


def recipe_value(recipe: dict[str, Any], name: str) -> Any:
    """A field of the RM recipe, or RMTrainConfig's default (read without building the config, which checks the
    machine's hardware)."""
    import dataclasses

    from rm.config import RMTrainConfig

    if name in recipe:
        return recipe[name]
    field = next(f for f in dataclasses.fields(RMTrainConfig) if f.name == name)
    return field.default


def estimate_rm_train(ctx: StageContext) -> Estimate:
    """No LLM calls; the note warns when MUSIC's conversations may be longer than the RM's max_length."""
    from augment.config import MusicConfig

    from pipeline.divergence import budget_warning
    from pipeline.stages import rm_recipe

    recipe = rm_recipe(ctx)
    max_steps = recipe_value(recipe, "max_steps")
    steps = (f"{max_steps} steps each" if max_steps and int(max_steps) > 0
             else f"{recipe_value(recipe, 'num_train_epochs'):g} epochs of D_aug, same steps for both")
    warning = budget_warning(ctx.options("augment", MusicConfig), recipe_value(recipe, "max_length"))
    return Estimate(items=f"{ctx.baseline_train_split.name} / {ctx.train_split.name} (mix output)",
                    note=f"no LLM calls; baseline and MUSIC RM, {steps}" + (f"; WARNING: {warning}" if warning else ""))


ESTIMATORS = {"augment": estimate_augment, "rm_train": estimate_rm_train, "bon": estimate_bon,
              "judge": estimate_judge, "generate": estimate_generate}


def estimate_stage(ctx: StageContext, stage: str) -> Estimate:
    """The estimate of one stage; stages without LLM calls get an empty one with what they consume."""
    if stage in ESTIMATORS:
        try:
            return ESTIMATORS[stage](ctx)
        except ConfigError as exc:
            return Estimate(items="?", note=f"cannot estimate: {exc}")
    inputs = {"mix": "seed pairs + MUSIC pairs", "rm_eval": "held-out sets of mix, both RMs",
              "report": "every stage's stage.json"}
    return Estimate(items=inputs[stage], note="no LLM calls")


def format_plan(ctx: StageContext, stages: list[str], statuses: dict[str, str]) -> str:
    """The dry-run table: stage, status, inputs, expected and maximum calls, token figures."""
    rows = [("stage", "status", "input", "LLM calls", "max calls", "completion tok <=", "prompt tok ~", "note")]
    total = Estimate()
    for stage in stages:
        estimate = Estimate(note="already done") if statuses[stage] == "done" else estimate_stage(ctx, stage)
        total.add(estimate)
        rows.append((stage, statuses[stage], estimate.items, f"{estimate.calls:.0f}", f"{estimate.max_calls:.0f}",
                     str(estimate.completion_tokens_max), str(estimate.prompt_tokens), estimate.note))
    rows.append(("total", "", "", f"{total.calls:.0f}", f"{total.max_calls:.0f}", str(total.completion_tokens_max),
                 str(total.prompt_tokens), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    partial = [stage for stage in stages if statuses[stage] == "partial"]
    if partial:
        lines.append(f"partial stages resume where they stopped ({', '.join(partial)}): their remaining calls are "
                     "fewer than shown")
    lines.append(f"run directory: {ctx.run_dir}")
    return "\n".join(lines)
