"""The mining and synthesis pages, the management commands, and cancelling a run."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.jobs import job_request_cancel
from core.models import JobStatus
from curation.mining.services import mining_run_create, mining_run_execute
from curation.models import (
    Candidate,
    CandidateOrigin,
    CandidateRole,
    Judgment,
    MiningRun,
    SynthesisRun,
)
from tests.curation.mining_support import minilm_path
from tests.factories import CandidateFactory, DatasetFactory, PassageFactory, QueryFactory
from tests.support.openai_server import FakeOpenAIServer, Reply

TOPICS = [
    ("how do bees make honey", "Bees make honey by regurgitating and evaporating flower nectar."),
    ("why is the sky blue", "The sky looks blue because air scatters short blue wavelengths."),
    ("what causes tides", "Tides are caused by the gravitational pull of the moon and sun."),
]
DISTRACTORS = [
    "Wasps do not make honey but build paper nests.",
    "Sunsets look red because light crosses more air.",
    "The moon has no atmosphere and no weather.",
    "Honey never spoils when it is stored sealed.",
    "Ocean currents are driven by wind and salinity.",
    "Violet light is scattered even more than blue light.",
]


@pytest.fixture
def small_dataset(db, settings, tmp_path):
    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    settings.SIEVE_EMBEDDING_PRECISION = "fp32"
    dataset = DatasetFactory(name="small", query_count=3, positive_count=3)
    for i, (question, answer) in enumerate(TOPICS):
        query = QueryFactory(dataset=dataset, query_id=f"q{i}", text=question)
        CandidateFactory(query=query, role=CandidateRole.POSITIVE, passage__text=answer)
    for text in DISTRACTORS:
        PassageFactory(corpus=dataset.corpus, text=text)
    return dataset


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


def test_viewers_read_runs_and_only_curators_launch(client, viewer, curator, small_dataset):
    run = mining_run_create(dataset=small_dataset, model_name="<b>odd</b>", enqueue=False)
    client.force_login(viewer)
    assert client.get(reverse("curation:mining_new", args=[small_dataset.pk])).status_code == 403
    assert (
        client.post(reverse("curation:mining_launch", args=[small_dataset.pk])).status_code == 403
    )
    page = client.get(reverse("curation:mining_run_detail", args=[run.pk]))
    assert page.status_code == 200
    assert b"&lt;b&gt;odd&lt;/b&gt;" in page.content and b"<b>odd</b>" not in page.content
    assert b">Cancel<" not in page.content  # viewers cannot cancel
    assert client.post(reverse("curation:mining_run_cancel", args=[run.pk])).status_code == 403
    client.force_login(curator)
    assert client.get(reverse("curation:mining_new", args=[small_dataset.pk])).status_code == 200
    assert client.get(reverse("curation:synthesis_new", args=[small_dataset.pk])).status_code == 200


def test_launching_a_mining_run_from_the_form(
    curator_client, small_dataset, django_capture_on_commit_callbacks
):
    url = reverse("curation:mining_launch", args=[small_dataset.pk])
    form = {"model_name": "intfloat/e5-base-v2", "prefixes": "auto", "batch_size": 32,
            "range_min": 0, "range_max": 50, "num_negatives": 7, "relative_margin": "0.05",
            "sampling": "random", "seed": 4, "teacher_flag_ratio": "0.95"}  # fmt: skip
    bad = curator_client.post(url, {**form, "range_min": 60})
    assert bad.status_code == 400 and b"must be larger than the ranks skipped" in bad.content
    assert not MiningRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = curator_client.post(url, form)
    run = MiningRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("curation:mining_run_detail", args=[run.pk])
    assert len(callbacks) == 1  # sent to the workers once the row is committed
    # E5's prefixes came with the model; the settings are on the row.
    assert (run.query_prefix, run.passage_prefix) == ("query: ", "passage: ")
    assert (run.num_negatives, run.range_max, run.sampling, run.seed) == (7, 50, "random", 4)
    assert run.relative_margin == 0.05 and run.created_by.username == "cora"
    custom = curator_client.post(
        url, {**form, "prefixes": "custom", "query_prefix": "search_query: ", "passage_prefix": ""}
    )
    assert custom.status_code == 302
    latest = MiningRun.objects.latest("id")
    assert (latest.query_prefix, latest.passage_prefix) == ("search_query: ", "")
    # The form and the run list say what the ranks and scores mean.
    page = curator_client.get(reverse("curation:mining_new", args=[small_dataset.pk]))
    html = page.content.decode()
    assert "Ranks skipped" in html and "Deepest rank" in html and "0: start at rank 1" in html
    assert "Keep a negative only if its score is at least this" in html
    assert '>Ranks considered</th><th>Margin</th><th class="num">Negatives per query</th>' in html
    assert '<td>1–50</td>\n      <td>relative 0.05</td>\n      <td class="num">7</td>' in html
    detail = curator_client.get(reverse("curation:mining_run_detail", args=[run.pk]))
    assert ">Ranks considered</dt><dd>1–50</dd>" in detail.content.decode()


def test_the_run_page_polls_until_the_run_ends(viewer_client, small_dataset):
    run = mining_run_create(dataset=small_dataset, enqueue=False)
    url = reverse("curation:mining_run_detail", args=[run.pk])
    fragment = viewer_client.get(url, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and b'hx-trigger="every 1s"' in fragment.content
    MiningRun.objects.filter(pk=run.pk).update(
        status=JobStatus.SUCCEEDED, progress=1.0, stats={"negatives_added": 12}
    )
    done = viewer_client.get(url, HTTP_HX_REQUEST="true")
    assert done.status_code == 286 and b"Negatives added" in done.content
    assert b"every 1s" not in done.content


def test_a_cancelled_run_stops_and_writes_nothing(small_dataset):
    run = mining_run_create(dataset=small_dataset, model_name=minilm_path(), enqueue=False)
    MiningRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING)
    job_request_cancel(job=run)
    mining_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert not Candidate.objects.filter(origin=CandidateOrigin.MINED).exists()


def test_mine_negatives_command(small_dataset):
    out = StringIO()
    call_command(
        "mine_negatives", "small", "--model", minilm_path(), "--max-seq-length", "64",
        "-n", "2", "--range-max", "5", stdout=out, stderr=StringIO(),
    )  # fmt: skip
    text = out.getvalue()
    assert "6 negatives added to 3 of 3 queries" in text
    assert "encoded now" in text and "teacher teacher:all-minilm-l6-v2:margin: 6 judgments" in text
    assert Judgment.objects.count() == 6
    # Each query's two nearest non-positive passages, e.g. the honey distractors for bees.
    bees = Candidate.objects.filter(query__query_id="q0", origin=CandidateOrigin.MINED)
    assert "Honey never spoils when it is stored sealed." in {c.passage.text for c in bees}
    again = StringIO()
    call_command(
        "mine_negatives", "small", "--model", minilm_path(), "--max-seq-length", "64",
        "-n", "2", "--range-max", "5", stdout=again, stderr=StringIO(),
    )  # fmt: skip
    assert (
        "0 negatives added" in again.getvalue()
        and "all from the embedding cache" in again.getvalue()
    )
    with pytest.raises(CommandError, match="no dataset named"):
        call_command("mine_negatives", "missing", stdout=StringIO())
    with pytest.raises(CommandError, match="range"):
        call_command("mine_negatives", "small", "--range-min", "9", "--range-max", "3")


def test_synthesis_form_refuses_a_key_and_launches(
    curator_client, small_dataset, django_capture_on_commit_callbacks
):
    url = reverse("curation:synthesis_launch", args=[small_dataset.pk])
    form = {"sample_size": 5, "seed": 1, "negative_mode": "generate", "top_k": 3,
            "negative_max_ratio": "0.95", "model": "gpt-4o-mini",
            "base_url": "http://vllm:8000/v1", "api_key_env": "OPENAI_API_KEY",
            "price_in_per_m": "0.15", "price_out_per_m": "0.60", "concurrency": 8,
            "temperature": "0.7", "max_tokens": 512, "json_mode": "on"}  # fmt: skip
    refused = curator_client.post(url, {**form, "api_key_env": "sk-live-1234"})
    assert refused.status_code == 400 and b"never the key itself" in refused.content
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = curator_client.post(url, form)
    run = SynthesisRun.objects.get()
    assert response.status_code == 302 and len(callbacks) == 1
    assert (
        run.generator["model"] == "gpt-4o-mini"
        and run.generator["base_url"] == "http://vllm:8000/v1"
    )
    assert run.generator["temperature"] == 0.7 and run.generator["price_in_per_m"] == "0.15"
    assert "sk-" not in json.dumps(run.generator)
    page = curator_client.get(reverse("curation:synthesis_run_detail", args=[run.pk]))
    assert page.status_code == 200 and b"gpt-4o-mini at http://vllm:8000/v1" in page.content


def test_a_synthesis_run_shows_its_cost_in_dollars_like_the_cascade(curator_client, small_dataset):
    stats = {"triplets_kept": 7, "paid_calls": 9, "cost_usd": "0.003100"}
    run = SynthesisRun.objects.create(
        dataset=small_dataset, generator={"model": "m"}, status=JobStatus.SUCCEEDED,
        progress=1.0, stats=stats, cost_usd="0.0031", budget_usd="5",
    )  # fmt: skip
    page = curator_client.get(reverse("curation:synthesis_run_detail", args=[run.pk]))
    html = page.content.decode()
    assert "<dt>Cost</dt><dd>$0.0031</dd>" in html and "0.003100" not in html
    runs = curator_client.get(reverse("curation:synthesis_new", args=[small_dataset.pk]))
    assert '<td class="num">$0.0031</td>' in runs.content.decode()


def test_synthesize_command(small_dataset, monkeypatch):
    monkeypatch.setenv("SIEVE_TEST_SYNTH_KEY", "k")

    def answer(body):
        user = body["messages"][-1]["content"]
        if "hard negative" in body["messages"][0]["content"]:
            return Reply(
                content=json.dumps({"passage": "Butterflies drink nectar but make no honey."})
            )
        if "Bees" in user:
            return Reply(content=json.dumps({"query": "how is honey made by bees"}))
        return Reply(content="{broken")

    out = StringIO()
    with FakeOpenAIServer(answer) as server:
        call_command(
            "synthesize", "small", "--sample-size", "9", "--teacher-model", minilm_path(),
            "--base-url", server.base_url, "--model", "gen",
            "--api-key-env", "SIEVE_TEST_SYNTH_KEY", "--top-k", "1",
            stdout=out, stderr=StringIO(),
        )  # fmt: skip
    text = out.getvalue()
    assert "1 triplets kept of 9 sampled passages" in text
    assert "8 unusable answers (0 recovered on retry)" in text
    # 9 queries, the 8 unusable ones retried once (unusable again), 1 negative.
    assert "calls: 18 paid" in text
    honey = Candidate.objects.get(origin=CandidateOrigin.GENERATED, role=CandidateRole.NEGATIVE)
    assert honey.passage.text == "Butterflies drink nectar but make no honey."


def test_annotators_and_strangers_stay_out(client, annotator_client, small_dataset):
    mining = mining_run_create(dataset=small_dataset, enqueue=False)
    synthesis = SynthesisRun.objects.create(dataset=small_dataset, generator={"model": "m"})
    pages = [
        reverse("curation:mining_new", args=[small_dataset.pk]),
        reverse("curation:synthesis_new", args=[small_dataset.pk]),
        reverse("curation:mining_run_detail", args=[mining.pk]),
        reverse("curation:synthesis_run_detail", args=[synthesis.pk]),
    ]
    for url in pages:
        assert annotator_client.get(url).status_code == 403, url
    annotator_client.logout()
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response["Location"], url
