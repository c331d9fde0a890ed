"""`local` backend cache identity (weights fingerprint) and response_format parsing: no model is loaded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chat.backends.grammar import schema_of
from chat.backends.local import CONVERSION_MARKER, engine_identity
from chat.errors import BackendError


def _model_dir(root: Path, weights: bytes = b"weights-v1") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 8}))
    (root / "model.safetensors").write_bytes(weights)
    return root


def test_identity_names_the_resolved_path_dtype_and_quantize(tmp_path: Path):
    model = _model_dir(tmp_path / "m")
    identity = engine_identity(str(model), "float32", "int8")
    assert identity.startswith(f"local|{model.resolve()}|files:")
    assert identity.endswith("|dtype=float32|quantize=int8")
    assert engine_identity(str(model), "float32", "none") != identity
    assert engine_identity(str(model), "bfloat16", "int8") != identity


def test_new_weights_under_the_same_path_get_a_new_identity(tmp_path: Path):
    model = _model_dir(tmp_path / "m")
    before = engine_identity(str(model), "float32", "int8")
    assert engine_identity(str(model), "float32", "int8") == before  # stable while nothing changes
    _model_dir(model, weights=b"weights-v2, retrained")
    assert engine_identity(str(model), "float32", "int8") != before


def test_same_size_weights_rewritten_later_get_a_new_identity(tmp_path: Path):
    model = _model_dir(tmp_path / "m", weights=b"AAAA")
    before = engine_identity(str(model), "float32", "int8")
    weights = model / "model.safetensors"
    weights.write_bytes(b"BBBB")
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert engine_identity(str(model), "float32", "int8") != before


def test_changed_config_gets_a_new_identity(tmp_path: Path):
    model = _model_dir(tmp_path / "m")
    before = engine_identity(str(model), "float32", "int8")
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 16}))
    assert engine_identity(str(model), "float32", "int8") != before


def test_converted_directory_is_named_by_its_marker(tmp_path: Path):
    model = _model_dir(tmp_path / "m")
    (model / CONVERSION_MARKER).write_text(json.dumps({"gguf_sha256": "abc123", "source": "x.gguf"}))
    identity = engine_identity(str(model), "float32", "int8")
    assert "|gguf:abc123|" in identity
    (model / CONVERSION_MARKER).write_text(json.dumps({"gguf_sha256": "def456", "source": "x.gguf"}))
    assert "|gguf:def456|" in engine_identity(str(model), "float32", "int8")


def test_marker_without_the_sha_falls_back_to_the_files(tmp_path: Path):
    model = _model_dir(tmp_path / "m")
    (model / CONVERSION_MARKER).write_text("{}")
    assert "|files:" in engine_identity(str(model), "float32", "int8")


def test_hub_id_is_pinned_by_its_commit():
    assert engine_identity("org/model", "float32", "none", "0123abcd") == \
        "local|org/model|commit:0123abcd|dtype=float32|quantize=none"


def test_response_format_schemas():
    schema = {"type": "object", "properties": {"verdict": {"enum": ["A", "B"]}}}
    assert schema_of(None) is None
    assert schema_of({"type": "text"}) is None
    assert schema_of({"type": "json_object"}) == ({"type": "object"}, False)
    assert schema_of({"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}) == (schema, True)


@pytest.mark.parametrize("response_format, message", [
    ({"type": "yaml"}, "response_format.type: expected 'text', 'json_object' or 'json_schema', got 'yaml'"),
    ({"type": "json_schema", "json_schema": {"name": "v"}}, "response_format.json_schema.schema: expected"),
    ("json", "response_format: expected a mapping, got str"),
])
def test_bad_response_format_is_a_clear_error(response_format, message):
    with pytest.raises(BackendError) as raised:
        schema_of(response_format)
    assert str(raised.value).startswith(message)
