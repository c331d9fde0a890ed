"""`turnwise serve`: expose a local model as an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import argparse
import os

from chat.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="Serve a local model as an OpenAI-compatible API (/v1/chat/completions, /v1/models)",
        description="Serve a transformers causal LM (default: the embedded instruct model) with the OpenAI chat "
                    "API, including response_format (enforced while decoding) and logprobs/top_logprobs. "
                    "Concurrent requests are generated together in one batch.")
    parser.add_argument("--model", default="embedded", help="`embedded` or a local model directory (default: embedded)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--served-model-name", help="model id reported by /v1/models (default: --model)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--quantize", default="auto", choices=["auto", "int8", "none"],
                        help="auto: int8 dynamic quantization on CPU, none on GPU")
    parser.add_argument("--max-batch-size", type=int, default=8, help="requests decoded together (default: 8)")
    parser.add_argument("--api-key-env", help="NAME of an env var holding a key that clients must send as Bearer token")
    parser.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from chat.backends.base import BackendSpec
    from chat.backends.local import LocalBackend
    from chat.serve import ChatServer

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: expected 0-65535, got {args.port}")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    backend = LocalBackend(BackendSpec(kind="local", model=args.model, dtype=args.dtype, quantize=args.quantize,
                                       max_batch_size=args.max_batch_size))
    try:
        server = ChatServer(backend, args.served_model_name or args.model, args.host, args.port, api_key=api_key)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    print(f"serving {backend.name} at {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    return 0
