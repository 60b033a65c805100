"""Cascade cost vs running only the strong judge on every query, from the ledger of a run.

    .venv/bin/python bench/cascade_cost.py [--data ../shared/data]

Replays RLHN's published run (25 MS MARCO queries: GPT-4o-mini's stage-1 answers, GPT-4o's
stage-2 answers for the 19 it flagged) through the real cascade: the dataset is imported from
the Tevatron file, a local OpenAI-compatible server answers each of our prompts with the
recorded answer for its query, and reports usage = the token counts of OUR prompt and of the
recorded answer (tiktoken o200k_base where its vocabulary is available offline, else
characters / 4; the output says which). The run's ``LLMCall`` ledger then gives:

* cascade: what stage 1 (every query) and stage 2 (forwarded queries) cost, at list prices
  (gpt-4o-mini $0.15 / $0.60, gpt-4o $2.50 / $10.00 per 1M tokens) and at Batch API prices;
* strong judge only: GPT-4o on every query, priced from the same ledger: input = the stage-1
  prompts' tokens (the prompts are identical), output = the stage-2 answers' tokens, and for
  the 6 queries GPT-4o never saw, the mean stage-2 answer length.

Needs PostgreSQL (a database ``sieve_bench_cascade_cost`` is created).
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_bench_cascade_cost"
STAGE1 = "msmarco_passage.stage_1.gpt-4o-mini.jsonl"
STAGE2 = "msmarco_passage.stage_2.gpt-4o.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    rlhn = Path(args.data) / "rlhn"

    from cascade_bench import django_setup

    django_setup(args.database_url, fresh=True)
    from django.db.models import Avg, Count, Sum

    from curation.cascade.create import cascade_run_create
    from curation.cascade.execute import cascade_run_execute
    from curation.datasets.imports import dataset_import
    from curation.llm.stages import StageSettings, call_cost
    from curation.llm.tokens import token_counter_for
    from curation.models import LLMCall
    from tests.support.openai_server import FakeOpenAIServer, Reply

    def records(name):
        return {r["query"]: r for r in map(json.loads, (rlhn / name).read_text().splitlines())}

    stage1, stage2 = records(STAGE1), records(STAGE2)
    dataset = dataset_import(
        source=rlhn / STAGE1, dataset_name="rlhn-cost", format="tevatron"
    ).dataset
    counter = token_counter_for("gpt-4o")

    def replay(body):
        recorded = stage1 if body["model"] == "gpt-4o-mini" else stage2
        query = body["messages"][-1]["content"].split("<query>", 1)[1].split("</query>", 1)[0]
        record = recorded[query.replace("‹", "<").replace("›", ">")]
        return Reply(
            content=record["response"],
            finish_reason=record["finish_reason"],
            prompt_tokens=counter.count_messages(body["messages"]),
            completion_tokens=counter.count_text(record["response"]),
        )

    with FakeOpenAIServer(replay) as server:
        stages = [
            StageSettings(number=1, model="gpt-4o-mini", base_url=server.base_url, json_mode=False,
                          price_in_per_m="0.15", price_out_per_m="0.60"),
            StageSettings(number=2, model="gpt-4o", base_url=server.base_url, json_mode=False,
                          price_in_per_m="2.50", price_out_per_m="10.00"),
        ]  # fmt: skip
        run = cascade_run_create(dataset=dataset, stages=stages, estimate={}, enqueue=False)
        cascade_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error

    ledger = {
        row["stage"]: row
        for row in LLMCall.objects.filter(cascade_run=run)
        .values("stage")
        .annotate(calls=Count("id"), tokens_in=Sum("input_tokens"), tokens_out=Sum("output_tokens"),
                  mean_out=Avg("output_tokens"), cost=Sum("cost_usd"))
    }  # fmt: skip
    s1, s2 = ledger[1], ledger[2]
    queries = s1["calls"]
    strong_out = s2["tokens_out"] + round(s2["mean_out"] * (queries - s2["calls"]))
    strong = call_cost(input_tokens=s1["tokens_in"], output_tokens=strong_out, stage=stages[1])
    cascade = s1["cost"] + s2["cost"]

    print(
        f"RLHN replay: {queries} queries, stage 1 forwarded {s2['calls']} "
        f"({s2['calls'] / queries:.0%}) to stage 2; tokens: {counter.method}"
    )
    print(f"{'':<28}{'calls':>7}{'input tok':>11}{'output tok':>12}{'online $':>11}{'batch $':>11}")
    rows = [
        ("stage 1 gpt-4o-mini", s1["calls"], s1["tokens_in"], s1["tokens_out"], s1["cost"]),
        ("stage 2 gpt-4o", s2["calls"], s2["tokens_in"], s2["tokens_out"], s2["cost"]),
        ("cascade total", s1["calls"] + s2["calls"], s1["tokens_in"] + s2["tokens_in"],
         s1["tokens_out"] + s2["tokens_out"], cascade),
        ("gpt-4o on every query", queries, s1["tokens_in"], strong_out, strong),
    ]  # fmt: skip
    for label, calls, tokens_in, tokens_out, cost in rows:
        print(
            f"{label:<28}{calls:>7}{tokens_in:>11,}{tokens_out:>12,}{cost:>11.4f}{cost / 2:>11.4f}"
        )
    print(
        f"cascade / strong-only = {cascade / strong:.2f}  (saves {1 - cascade / strong:.0%}); "
        f"per 1,000 queries: cascade ${cascade / queries * 1000:.2f}, strong-only "
        f"${strong / queries * 1000:.2f} (online prices)"
    )
    breakeven = 1 - s1["cost"] / strong
    print(
        f"stage 1 costs {s1['cost'] / strong:.1%} of the strong-only run: the cascade is cheaper "
        f"while stage 1 forwards under {breakeven:.0%} of the queries "
        f"(here {s2['calls'] / queries:.0%})"
    )
    assert run.cost_usd == cascade.quantize(Decimal("0.000001"))


if __name__ == "__main__":
    main()
