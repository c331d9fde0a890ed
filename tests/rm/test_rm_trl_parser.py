"""`rm train` options through TRL's TrlParser, and the RewardConfig fields turnwise applies itself."""

from __future__ import annotations

import pytest
import torch

from chat.errors import ConfigError
from rm.cli import parse_train_config
from rm.data import tokenize_pairs
from rm.encoding import ConversationEncoder
from rm.train import build_model, load_tokenizer
from rm_helpers import TINY_CONFIG, synthetic_pairs, tiny_config


def test_bare_boolean_flags_lists_and_config_file(tmp_path):
    config = parse_train_config(["--config", str(TINY_CONFIG), "--use_peft", "--lora_target_modules", "q_proj",
                                 "v_proj", "--output_dir", str(tmp_path), "--max_steps", "3"])
    assert config.use_peft is True and config.lora_target_modules == ["q_proj", "v_proj"]
    assert config.max_steps == 3 and config.learning_rate == 1.0e-3  # flag beats file; file beats default
    assert config.model_config["model_type"] == "gemma2" and config.max_length == 512


def test_config_env_mapping_is_exported(tmp_path, monkeypatch):
    monkeypatch.delenv("TURNWISE_TEST_ENV", raising=False)
    path = tmp_path / "run.yaml"
    path.write_text(TINY_CONFIG.read_text() + "env:\n  TURNWISE_TEST_ENV: set-by-config\n")
    parse_train_config(["--config", str(path), "--output_dir", str(tmp_path)])
    import os

    assert os.environ["TURNWISE_TEST_ENV"] == "set-by-config"
    monkeypatch.delenv("TURNWISE_TEST_ENV")


@pytest.mark.parametrize("argv, message", [
    (["--config", "missing.yaml"], "missing.yaml: no such file"),
    (["--config"], "--config: expected a YAML file"),
    (["--load_in_4bit"], "use_peft: true"),
])
def test_bad_configs_are_one_line_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_train_config(argv)


def test_unknown_config_key_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("max_steps: 2\nno_such_field: 1\n")
    with pytest.raises(ConfigError, match="no_such_field"):
        parse_train_config(["--config", str(path)])


def test_unknown_flag_is_refused(run_cli):
    with pytest.raises(ConfigError, match="not used by the HfArgumentParser: \\['--no_such_flag', '1'\\]"):
        parse_train_config(["--no_such_flag", "1"])
    code, _, err = run_cli("rm", "train", "--no_such_flag", "1")
    assert code == 2 and "--no_such_flag" in err and "Traceback" not in err


def test_help_lists_trl_and_turnwise_fields(run_cli, capsys):
    with pytest.raises(SystemExit) as exited:
        run_cli("rm", "train", "--help")
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "--center_rewards_coefficient" in out and "--use_peft" in out


def test_chat_template_path_is_applied_before_tokenization(tmp_path):
    template = tmp_path / "plain.jinja"
    template.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")
    tokenizer = load_tokenizer(tiny_config(tmp_path, chat_template_path=str(template)))
    encoder = ConversationEncoder(tokenizer)
    pair = synthetic_pairs(1)[0]
    assert encoder.render(pair.chosen.messages).startswith("[user] question 0")
    with pytest.raises(ConfigError, match="expected a .jinja or .j2 file"):
        load_tokenizer(tiny_config(tmp_path, chat_template_path=str(TINY_CONFIG)))


def test_eos_and_pad_tokens_must_be_in_the_vocabulary(tmp_path, gemma_tokenizer):
    tokenizer = load_tokenizer(tiny_config(tmp_path, eos_token="<end_of_turn>", pad_token="<eos>"))
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<end_of_turn>", "<eos>")
    with pytest.raises(ConfigError, match="eos_token: '<nope>' is not in the vocabulary"):
        load_tokenizer(tiny_config(tmp_path, eos_token="<nope>"))


def test_model_init_kwargs_and_trust_remote_code_reach_from_pretrained(tmp_path, tiny_base_dir, gemma_tokenizer,
                                                                       monkeypatch):
    import transformers

    seen = {}
    original = transformers.AutoModelForSequenceClassification.from_pretrained

    def recording(source, **kwargs):
        seen.update(kwargs)
        return original(source, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", recording)
    config = tiny_config(tmp_path, model_config=None, model_name_or_path=str(tiny_base_dir), trust_remote_code=True,
                         model_init_kwargs={"dtype": "bfloat16", "revision": "main"})
    model = build_model(config, gemma_tokenizer)
    assert seen["trust_remote_code"] is True and seen["revision"] == "main"
    assert next(model.parameters()).dtype == torch.bfloat16  # the user's dtype beats turnwise's float32
    with pytest.raises(ConfigError, match="not to one built from model_config"):
        build_model(tiny_config(tmp_path, model_init_kwargs={"dtype": "float32"}), gemma_tokenizer)


def test_dataset_num_proc_tokenizes_identically(gemma_tokenizer):
    pairs = synthetic_pairs(12, seed=4)
    encoder = ConversationEncoder(gemma_tokenizer, max_length=60)  # forces some left truncation
    serial = tokenize_pairs(pairs, encoder)
    parallel = tokenize_pairs(pairs, encoder, num_proc=2)
    assert parallel.columns == serial.columns
    assert serial.truncation.truncated_sequences > 0
    assert parallel.truncation.to_dict() == serial.truncation.to_dict()
