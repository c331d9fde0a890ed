"""`turnwise rm serve`: a real HTTP server on 127.0.0.1: scores, per-turn scores, batching, clear 4xx errors."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading

import pytest

from rm.model import RewardModel
from rm.serve import RewardServer
from rm_helpers import REPO_ROOT, RM_ONLY_CLI, synthetic_pairs


@pytest.fixture(scope="module")
def reward_model(tiny_base_dir) -> RewardModel:
    return RewardModel.load(tiny_base_dir, device="cpu")


@pytest.fixture(scope="module")
def server(reward_model):
    running = RewardServer(reward_model, "127.0.0.1", 0, max_batch=64, max_wait_s=0.05).start()
    yield running
    running.close()


def request(server: RewardServer, method: str, path: str, body: object = None, raw: bytes | None = None
            ) -> tuple[int, dict]:
    host, port = server.httpd.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, data


def conversations(n: int, seed: int = 0) -> list[list[dict]]:
    return [p.chosen.to_messages() for p in synthetic_pairs(n, seed=seed)]


def test_server_listens_on_loopback_only(server):
    assert server.httpd.server_address[0] == "127.0.0.1"


def test_health(server):
    status, body = request(server, "GET", "/health")
    assert status == 200 and body["status"] == "ok"


def test_score_returns_the_models_rewards(server, reward_model):
    batch = conversations(3)
    status, body = request(server, "POST", "/score", {"conversations": batch})
    assert status == 200
    assert body["rewards"] == pytest.approx(reward_model.score(batch), abs=1e-5)


def test_per_turn_scores_accept_message_objects(server, reward_model):
    batch = conversations(2, seed=1)
    status, body = request(server, "POST", "/score", {"conversations": [{"messages": m} for m in batch],
                                                      "per_turn": True})
    assert status == 200
    assert len(body["turn_rewards"]) == 2
    for rewards, messages in zip(body["turn_rewards"], batch):
        assert rewards == pytest.approx(reward_model.score_turns(messages), abs=1e-5)


def test_concurrent_requests_share_batches(server, reward_model):
    batch = conversations(8, seed=2)
    results: dict[int, dict] = {}
    before = server.batcher.batches

    def client(i: int) -> None:
        results[i] = request(server, "POST", "/score", {"conversations": [batch[i]]})[1]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = reward_model.score(batch)
    assert [results[i]["rewards"][0] for i in range(8)] == pytest.approx(expected, abs=1e-5)
    assert server.batcher.batches - before < 8
    assert server.batcher.largest_batch_requests > 1


@pytest.mark.parametrize("payload, status, fragment", [
    ({"conversations": [[{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]]}, 422,
     "conversations[0][1].role"),
    ({"conversations": [[{"role": "user", "content": ""}]]}, 422, "conversations[0][0].content: empty content"),
    ({"conversations": []}, 400, "conversations: expected a non-empty list"),
    ({"conversations": ["hello"]}, 400, "conversations[0]: expected a list"),
    ({"conversations": [[{"role": "user", "content": "hi"}]], "per_turn": "yes"}, 400, "per_turn"),
    ([1, 2], 400, "JSON object"),
])
def test_invalid_requests_get_a_clear_4xx(server, payload, status, fragment):
    code, body = request(server, "POST", "/score", payload)
    assert code == status
    assert fragment in body["error"]


def test_invalid_json_and_unknown_paths(server):
    code, body = request(server, "POST", "/score", raw=b"{not json")
    assert code == 400 and body["error"].startswith("invalid JSON")
    code, body = request(server, "GET", "/nope")
    assert code == 404
    code, body = request(server, "POST", "/nope", {"conversations": []})
    assert code == 404


@pytest.mark.slow
def test_serve_command_answers_on_the_port_it_prints(tiny_base_dir):
    process = subprocess.Popen([sys.executable, "-c", RM_ONLY_CLI, "rm", "serve", "--model", str(tiny_base_dir),
                                "--port", "0", "--device", "cpu"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert "serving" in line, line
        url = line.split(" on ")[1].split()[0]
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.request("POST", "/score", body=json.dumps({"conversations": conversations(1)}),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        assert len(json.loads(response.read())["rewards"]) == 1
    finally:
        process.terminate()
        process.wait(timeout=30)


def post(server: RewardServer, path: str, body: object, headers: dict | None = None) -> tuple[int, dict]:
    host, port = server.httpd.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    connection.request("POST", path, body=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, data


def openrlhf_query(tokenizer, messages: list[dict], left_pads: int = 0) -> str:
    """What OpenRLHF sends: the prompt in the chat template with a generation prompt, the reply, EOS, padding
    (decoded with special tokens)."""
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    return tokenizer.pad_token * left_pads + prompt + messages[-1]["content"] + tokenizer.eos_token


def test_get_reward_scores_openrlhf_queries_like_score(server, reward_model):
    batch = conversations(3, seed=3)
    batch[1] = [{"role": "system", "content": "Be brief."}, *batch[1]]
    queries = [openrlhf_query(reward_model.tokenizer, m, left_pads=i) for i, m in enumerate(batch)]
    before = request(server, "GET", "/health")[1]
    status, body = post(server, "/get_reward", {"query": queries, "prompts": ["p"] * 3, "labels": ["l"] * 3})
    assert status == 200 and set(body) == {"rewards"}
    assert body["rewards"] == pytest.approx(reward_model.score(batch), abs=1e-5)
    after = request(server, "GET", "/health")[1]
    assert after["queries"] - before["queries"] == 3
    assert after["unparsed_queries"] == before["unparsed_queries"]


def test_get_reward_scores_text_outside_the_template_as_text(server, reward_model):
    before = request(server, "GET", "/health")[1]["unparsed_queries"]
    status, body = post(server, "/get_reward", {"query": ["User: hi\nAssistant: hello"]})
    assert status == 200
    expected = reward_model.score_token_ids([reward_model.encoder.tokenize_text("User: hi\nAssistant: hello")])
    assert body["rewards"] == pytest.approx(expected, abs=1e-5)
    assert request(server, "GET", "/health")[1]["unparsed_queries"] == before + 1


@pytest.mark.parametrize("payload, fragment", [
    ({"query": []}, "query: expected a non-empty list of strings"),
    ({"query": "text"}, "query: expected a non-empty list of strings"),
    ({"query": ["ok", 3]}, "query[1]: expected a non-empty string"),
    ({"queries": ["ok"]}, "query: expected"),
])
def test_get_reward_rejects_bad_payloads(server, payload, fragment):
    status, body = post(server, "/get_reward", payload)
    assert status == 400 and fragment in body["error"]


def test_api_key_is_required_and_never_logged(reward_model, caplog):
    secured = RewardServer(reward_model, "127.0.0.1", 0, api_key="s3cret-key").start()
    try:
        messages = conversations(1, seed=4)
        with caplog.at_level("WARNING", logger="rm.serve"):
            assert post(secured, "/get_reward", {"query": ["x"]})[0] == 401
            status, body = post(secured, "/score", {"conversations": messages},
                                {"Authorization": "Bearer wrong-guess"})
        assert status == 401 and body == {"error": "missing or invalid API key"}
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "401" in logged and "/get_reward" in logged and "wrong-guess" not in logged
        assert "s3cret-key" not in logged
        status, body = post(secured, "/score", {"conversations": messages}, {"Authorization": "Bearer s3cret-key"})
        assert status == 200 and body["rewards"] == pytest.approx(reward_model.score(messages), abs=1e-5)
    finally:
        secured.close()


def test_serve_refuses_an_unset_api_key_variable(run_cli, tiny_base_dir, monkeypatch):
    monkeypatch.delenv("TURNWISE_TEST_RM_KEY", raising=False)
    code, _, err = run_cli("rm", "serve", "--model", tiny_base_dir, "--api-key-env", "TURNWISE_TEST_RM_KEY")
    assert code == 2 and "TURNWISE_TEST_RM_KEY is not set" in err
