"""Shared pieces of the cascade tests: a small dataset with known false negatives, stage
settings pointing at a FakeOpenAIServer, and a judge that answers like a real one would."""

import json
import re
import threading
from collections import Counter

from curation.llm.stages import StageSettings
from curation.models import CandidateRole
from tests.factories import CandidateFactory, DatasetFactory, QueryFactory
from tests.support.openai_server import Reply

_QUERY_RE = re.compile(r"<query>(.*?)</query>", re.S)
_DOC_RE = re.compile(r"^Doc \((\d+)\): <doc>(.*?)</doc>$", re.M)
_GROUND_TRUTH_RE = re.compile(r'<ground_truth n="(\d+)">(.*?)</ground_truth>', re.S)


def small_dataset(*, queries: int = 6, negatives: int = 4, name: str = "cascade-small"):
    """``queries`` queries, each with one positive and ``negatives`` ranked negatives; in
    every odd-numbered query the negative at rank 2 says "ANSWERS" (a false negative) and in
    every query divisible by 3 the one at rank 3 says "PARTLY" (relevant but worse)."""
    dataset = DatasetFactory(name=name)
    for q in range(1, queries + 1):
        query = QueryFactory(dataset=dataset, query_id=f"q{q:03d}", text=f"question number {q}")
        CandidateFactory(
            query=query, role=CandidateRole.POSITIVE, passage__text=f"the answer to {q}"
        )
        # Created in reverse so that id order differs from rank order.
        for rank in range(negatives, 0, -1):
            text = f"passage {q}.{rank}"
            if rank == 2 and q % 2:
                text += " ANSWERS"
            if rank == 3 and q % 3 == 0:
                text += " PARTLY"
            CandidateFactory(query=query, rank=rank, passage__text=text)
    return dataset


def dataset_with_positives(positives: int, *, negatives: int = 3, name: str = "many-positives"):
    """One query with ``positives`` positives ("positive passage 1" … in id order, the first
    with a title) and ``negatives`` ranked negatives: fixed texts, so its prompt is too."""
    dataset = DatasetFactory(name=name)
    query = QueryFactory(dataset=dataset, query_id="q1", text="which passages answer this?")
    for n in range(1, positives + 1):
        CandidateFactory(
            query=query,
            role=CandidateRole.POSITIVE,
            passage__title="A title" if n == 1 else "",
            passage__text=f"positive passage {n}",
        )
    for rank in range(1, negatives + 1):
        CandidateFactory(query=query, rank=rank, passage__text=f"negative passage {rank}")
    return dataset


def query_of(body: dict) -> str:
    return _QUERY_RE.search(body["messages"][-1]["content"]).group(1)


def docs_of(body: dict) -> dict[int, str]:
    return {int(n): text for n, text in _DOC_RE.findall(body["messages"][-1]["content"])}


def ground_truths_of(body: dict) -> list[str]:
    """The positives a prompt showed, in order (checked to be numbered 1, 2, …)."""
    found = _GROUND_TRUTH_RE.findall(body["messages"][-1]["content"])
    assert [int(n) for n, _ in found] == list(range(1, len(found) + 1))
    return [text for _, text in found]


def byte_counter():
    """A real tiktoken Encoding whose tokens are single bytes: exact and checkable offline."""
    import tiktoken

    from curation.llm import tokens

    encoding = tiktoken.Encoding(
        name="bytes", pat_str=r"[\s\S]", mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={},
    )  # fmt: skip
    return tokens.encoding_counter(encoding, "bytes")


def received_tokens(bodies: list[dict]) -> int:
    """What the server received, one token a byte, the way OpenAI counts a chat request:
    3 tokens per message plus its role and content, and 3 for the reply's priming."""
    return sum(
        3 + sum(3 + len(m["role"].encode()) + len(m["content"].encode()) for m in body["messages"])
        for body in bodies
    )


def judge_answer(body: dict) -> str:
    """What a sound judge answers about this prompt, as JSON."""
    docs = docs_of(body)
    better = [n for n, text in docs.items() if "ANSWERS" in text]
    worse = [n for n, text in docs.items() if "PARTLY" in text]
    return json.dumps(
        {"reasoning": " ".join(f"Doc ({n}) read." for n in docs), "better": better, "worse": worse}
    )


def sound_judge(body: dict) -> Reply:
    return Reply(content=judge_answer(body), prompt_tokens=1000, completion_tokens=200)


def stage(number: int, server=None, **changes) -> StageSettings:
    """Stage ``number`` against ``server`` (or an address nothing listens on)."""
    settings = StageSettings(
        number=number,
        model="gpt-4o-mini" if number == 1 else "gpt-4o",
        base_url=server.base_url if server is not None else "http://127.0.0.1:9/v1",
        api_key_env="SIEVE_TEST_LLM_KEY",
        price_in_per_m="0.15" if number == 1 else "2.50",
        price_out_per_m="0.60" if number == 1 else "10.00",
        concurrency=4,
        timeout_s=5.0,
        max_attempts=3,
        backoff_base_s=0.05,
        json_mode=True,
        max_tokens=1000,
    )
    return settings.with_changes(**changes)


def form_data(**changes) -> dict:
    """A valid POST of the launch form (two stages; ``env_stages``), with ``changes``."""
    data = {
        "mode": "online", "budget_usd": "5", "forward_tags": ["better", "worse"],
        "false_negative_tags": ["better"], "max_negatives": "25",
        "output_tokens_per_call": "2048", "flag_rate": "0.8",
    }  # fmt: skip
    for n, (model, price_in, price_out) in (
        (1, ("gpt-4o-mini", "0.15", "0.60")),
        (2, ("gpt-4o", "2.50", "10.00")),
    ):
        data.update({
            f"stage{n}_model": model, f"stage{n}_base_url": "http://127.0.0.1:9/v1",
            f"stage{n}_api_key_env": "OPENAI_API_KEY", f"stage{n}_price_in_per_m": price_in,
            f"stage{n}_price_out_per_m": price_out, f"stage{n}_concurrency": "8",
            f"stage{n}_rpm": "0", f"stage{n}_json_mode": "on", f"stage{n}_max_tokens": "4096",
        })  # fmt: skip
    data.update(changes)
    return data


def chat_requests(server) -> list[dict]:
    return [r["body"] for r in server.requests if r["path"].rstrip("/") == "/v1/chat/completions"]


def per_query(server) -> Counter:
    return Counter(query_of(body) for body in chat_requests(server))


class CountingResponder:
    """Wraps a responder; thread-safe counts of calls per query text."""

    def __init__(self, respond):
        self.respond = respond
        self.calls: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> Reply:
        with self.lock:
            self.calls[query_of(body)] += 1
            number = self.calls[query_of(body)]
        return self.respond(body, number)
