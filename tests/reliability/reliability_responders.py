"""Deterministic agent replies for every LLM stage, as `reply(body)` functions of an OpenAI request body.

Each reply depends only on the request (messages and seed), so a request retried after a fault gets the
same answer and a faulty run writes the same records as a fault-free one. The formats follow each stage's
parsers (augment/, judge/, generate/); the roles are recognised by their system prompts.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any, Callable

from augment.prompts import render as render_augment
from chat.user_simulator import user_simulator_system
from generate.prompts import render as render_generate

Body = dict[str, Any]


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16)


def _messages(body: Body) -> list[dict[str, str]]:
    return [m for m in body.get("messages", []) if isinstance(m, dict)]


def _system(body: Body) -> str:
    messages = _messages(body)
    return messages[0].get("content", "") if messages and messages[0].get("role") == "system" else ""


def _last_user(body: Body) -> str:
    return next((m.get("content", "") for m in reversed(_messages(body)) if m.get("role") == "user"), "")


# -- augment music (MUSIC simulator roles) -------------------------------------------------------------------

_USER_SYSTEM = user_simulator_system()
_CONTRAST_SYSTEM = render_augment("contrast_system")
_INSTRUCTION = re.compile(r"Latest user instruction:\n(.*)\n\nReply with the JSON object\.", re.DOTALL)


def music_reply(body: Body) -> str:
    """User simulator: `question N [hash]`; contrast: a JSON swap; assistants (the contrastive one sees the
    swapped instruction as its latest user turn): `answer [hash]`."""
    messages, system = _messages(body), _system(body)
    if system == _USER_SYSTEM:
        # the simulator sees the conversation with roles flipped: earlier user turns arrive as "assistant"
        asked = sum(1 for m in messages if m.get("role") == "assistant")
        transcript = "\n".join(m.get("content", "") for m in messages[1:])
        return f"question {asked + 1} [{digest(transcript) % 10**6}]"
    if system == _CONTRAST_SYSTEM:
        match = _INSTRUCTION.search(messages[1]["content"])
        instruction = match.group(1) if match else messages[1]["content"]
        return json.dumps({"swapped_instruction": f"a different request [{digest(instruction) % 10**6}]",
                           "reason": "a neighbouring task"})
    return f"answer [{digest(_last_user(body)) % 10**6}]"


# -- judge pairs / grade --------------------------------------------------------------------------------------

def judge_reply(body: Body) -> str:
    """Pairwise: [[A]] or [[B]] by a hash of the prompt; grading: `Rating: [[N]]`, N in 1..10."""
    prompt = _last_user(body)
    if "[[A]]" in _system(body):
        return f"Both answers are short. [[{'AB'[digest(prompt) % 2]}]]"
    return f"Adequate. Rating: [[{digest(prompt) % 10 + 1}]]"


# -- generate review-instruct -----------------------------------------------------------------------------------

_CANDIDATE = render_generate("candidate_system", max_words=300).splitlines()[0]
_REVIEWER = render_generate("reviewer_system", max_words=300).splitlines()[0]
_CHAIRMAN = render_generate("chairman_system", max_words=300).splitlines()[0]


def review_instruct_reply(body: Body) -> str:
    """Reviewers: a JSON review and vote; the chairman: a JSON next question numbered after the questions so far;
    the candidate: a plain answer (generate-v3 prompts)."""
    system, last = _system(body), _last_user(body)
    if _REVIEWER in system:
        return json.dumps({"review": "fine on all five criteria",
                           "vote": "positive" if digest(last) % 3 else "negative"})
    if _CHAIRMAN in system:
        asked = last.split("Latest answer:")[0].count("\n") - 1
        question = {"question": f"Question {asked + 1} about {digest(last) % 97}?"}
        # the chairman that decides breadth or depth itself answers with its decision too
        return json.dumps({"decision": "breadth", **question} if '"decision"' in last else question)
    return f"answer to: {last}"


# -- generate sedi / self-instruct ------------------------------------------------------------------------------

_WORDS = ("river mountain poem budget recipe python essay planet history letter summary story riddle email "
          "garden theorem market song travel chess").split()


#: Task forms of the generated instructions; each slot gets three words, so that two tasks of one form share little
#: more than the form and most pass the ROUGE-L pool filter (the disk-full test needs a run that keeps many).
_TASK_FORMS = ("Write a short note about {} and {}.", "Describe how {} relate to {}.", "List the facts of {} for {}.",
               "Explain why {} matters for {}.", "Compare {} with {} briefly.", "Summarize {} for a reader of {}.")


def sedi_reply(body: Body) -> str:
    """Generation prompts ("Come up with N new ... tasks"): the JSON object {"tasks": [...]} of N tasks, each a task
    form filled with words drawn by a hash of the prompt and the seed; others: a response."""
    prompt = _last_user(body)
    asked = re.match(r"Come up with (\d+) new", prompt)
    if not asked:
        return f"Response to: {prompt}"
    rng = random.Random(digest(prompt) + int(body.get("seed") or 0))
    tasks = [rng.choice(_TASK_FORMS).format(*(" ".join(rng.sample(_WORDS, 3)) for _ in range(2)))
             for _ in range(int(asked.group(1)))]
    return json.dumps({"tasks": tasks})


# -- generate coevol ------------------------------------------------------------------------------------------

_DEBATERS = ("You are the positive debater", "You are the critical debater")
_COEVOL = {role: render_generate(f"coevol_{role}_system", max_suggestions=3).splitlines()[0]
           for role in ("advisor", "editor", "judge")}


def coevol_reply(body: Body) -> str:
    """Debaters review, the advisor suggests (JSON), the editor appends "(edited)", the judge prefers one edit
    (JSON verdict)."""
    messages, system = _messages(body), _system(body)
    text = messages[1]["content"] if len(messages) > 1 else ""
    if system.startswith(_DEBATERS):
        return f"view {digest(text) % 1000}"
    if system.startswith(_COEVOL["advisor"]):
        return json.dumps({"suggestions": ["add an example", "be precise"]})
    if system.startswith(_COEVOL["editor"]):
        response = text.split("Response:\n")[1].split("\n\nSuggestions:")[0]
        return f"{response} (edited)"
    if system.startswith(_COEVOL["judge"]):
        a = text.split("Response A:\n")[1].split("\n\nResponse B:")[0]
        b = text.split("Response B:\n")[1].split("\n\nReply with")[0]
        edits = max(a.count("(edited)"), b.count("(edited)"))
        new = "A" if a.count("(edited)") > b.count("(edited)") else "B"
        return json.dumps({"verdict": new if edits < 2 else {"A": "B", "B": "A"}[new]})
    return "unexpected"


# -- generate mimg --------------------------------------------------------------------------------------------

_MIMG = {role: render_generate(f"mimg_{role}_system", max_questions=3, hops=2).splitlines()[0]
         for role in ("question", "answer", "verify", "merge")}


def mimg_reply(body: Body) -> str:
    """Every MIMG agent answers with the JSON object its generate-v3 prompt asks for."""
    messages, system = _messages(body), _system(body)
    text = messages[1]["content"] if len(messages) > 1 else ""
    if system.startswith(_MIMG["question"]):
        topic = text.split(":\n", 1)[1].split()[0]
        return json.dumps({"questions": [f"When was {topic} founded?", f"Who led {topic}?"]})
    if system.startswith(_MIMG["answer"]):
        question = text.split("Question:\n")[1].split("\n")[0]
        return json.dumps({"answer": f"The answer to '{question}' is stated.",
                           "short_answer": f"fact of {question[:-1]}"})
    if system.startswith(_MIMG["verify"]):
        return json.dumps({"score": 7 + digest(text) % 4})
    if system.startswith(_MIMG["merge"]):
        first = text.split("):\n")[1].split("\n")[0]
        second = text.split("New question:\n")[1].split("\n")[0]
        return json.dumps({"question": f"{first[:-1]} and {second}", "answer": "Step 1 ... Step 2 ... final."})
    return "unexpected"


def pipeline_reply(body: Body) -> str:
    """`turnwise run`'s one LLM backend for every role: the MUSIC simulator and contrast, the pairwise judge, the
    Review-Instruct reviewers and chairman, SeDi's generator; anything else (MUSIC's assistants, the
    Review-Instruct candidate, SeDi's responder) gets an assistant answer."""
    system = _system(body)
    if system in (_USER_SYSTEM, _CONTRAST_SYSTEM):
        return music_reply(body)
    if "[[A]]" in system or "Rating: [[N]]" in system:
        return judge_reply(body)
    if _REVIEWER in system or _CHAIRMAN in system:
        return review_instruct_reply(body)
    if _last_user(body).startswith("Come up with"):
        return sedi_reply(body)
    return f"answer [{digest(_last_user(body)) % 10**6}]"


RESPONDERS: dict[str, Callable[[Body], str]] = {
    "augment music": music_reply, "judge pairs": judge_reply, "judge grade": judge_reply,
    "generate review-instruct": review_instruct_reply, "generate sedi": sedi_reply,
    "generate coevol": coevol_reply, "generate mimg": mimg_reply,
}
