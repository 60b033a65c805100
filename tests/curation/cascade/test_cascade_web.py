"""The cascade pages: launch form prefilled from the environment, the dry-run estimate step,
the launch, the live run page (and its htmx fragment), cancel, and who may do what."""

import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from core.models import JobStatus
from curation.cascade.create import cascade_run_create
from curation.cascade.execute import cascade_run_execute
from curation.models import CascadeRun
from tests.curation.cascade.cascade_support import form_data, small_dataset, sound_judge, stage
from tests.support.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.django_db


def test_the_form_is_prefilled_from_the_environment(curator_client, env_stages):
    dataset = small_dataset(queries=2)
    page = curator_client.get(reverse("curation:cascade_new", args=[dataset.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="http://127.0.0.1:9/v1"' in html
    assert re.search(r'name="stage2_concurrency"[^>]*value="32"', html)
    assert "Launch cascade" not in html  # only after an estimate
    # The tags say what the judge means by them.
    assert "better: answers the query as well as the positive, or better" in html
    assert "worse: relevant, but not as good as the positive" in html


def test_estimate_then_launch(curator_client, curator, env_stages):
    dataset = small_dataset(queries=3)
    estimate_url = reverse("curation:cascade_estimate", args=[dataset.pk])
    page = curator_client.post(estimate_url, form_data())
    html = page.content.decode()
    assert page.status_code == 200
    assert "Estimated cost: $0.0" in html and "Launch cascade" in html
    assert "3 queries with negatives" in html
    assert "bpe-openai o200k_base" in html  # exact offline, and the page says how it counted
    assert "characters / 4" not in html
    assert not CascadeRun.objects.exists()  # estimating launches nothing

    response = curator_client.post(
        reverse("curation:cascade_launch", args=[dataset.pk]), form_data()
    )
    run = CascadeRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("curation:cascade_run_detail", args=[run.pk])
    assert (run.dataset, run.mode, run.created_by, str(run.budget_usd)) == (
        dataset,
        "online",
        curator,
        "5.0000",
    )
    assert [s["model"] for s in run.stages] == ["gpt-4o-mini", "gpt-4o"]
    assert run.forward_tags == ["better", "worse"] and run.false_negative_tags == ["better"]
    assert run.estimate["queries"] == 3 and run.estimate["stages"][1]["calls"] == 2


def test_bad_input_comes_back_with_errors(curator_client, env_stages):
    dataset = small_dataset(queries=1)
    page = curator_client.post(
        reverse("curation:cascade_launch", args=[dataset.pk]),
        form_data(forward_tags=[], stage1_api_key_env="not a name"),
    )
    assert page.status_code == 400
    assert not CascadeRun.objects.exists()
    assert b"has-error" in page.content


def test_viewers_read_runs_but_cannot_launch_or_cancel(client, viewer, env_stages):
    dataset = small_dataset(queries=1)
    run = cascade_run_create(dataset=dataset, stages=[stage(1)], enqueue=False)
    client.force_login(viewer)
    assert client.get(reverse("curation:cascade_new", args=[dataset.pk])).status_code == 403
    assert (
        client.post(reverse("curation:cascade_launch", args=[dataset.pk]), form_data()).status_code
        == 403
    )
    assert client.post(reverse("curation:cascade_run_cancel", args=[run.pk])).status_code == 403
    page = client.get(reverse("curation:cascade_run_detail", args=[run.pk]))
    assert page.status_code == 200 and b"Cancel</button>" not in page.content


def test_the_run_page_shows_live_counts_and_stops_polling_when_done(curator_client):
    dataset = small_dataset(queries=4)
    with FakeOpenAIServer(sound_judge) as server:
        run = cascade_run_create(
            dataset=dataset, stages=[stage(1, server), stage(2, server)], enqueue=False
        )
        url = reverse("curation:cascade_run_detail", args=[run.pk])
        queued = curator_client.get(url, HTTP_HX_REQUEST="true")
        assert queued.status_code == 200 and b'hx-trigger="every 1s"' in queued.content
        assert b"Cancel</button>" in queued.content
        cascade_run_execute(run_id=run.pk)
    done = curator_client.get(url, HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # htmx: stop polling
    html = done.content.decode()
    assert "succeeded" in html and "every 1s" not in html
    # Stage 1: 4 queries judged, 2 flagged (the odd ones); stage 2: those 2.
    rows = re.findall(r"<tr>\s*<td>(\d)</td><td>([\w.-]+)</td>(.*?)</tr>", html, re.S)
    cells = {n: re.findall(r'<td class="num">([^<]*)</td>', rest) for n, _, rest in rows}
    assert cells["1"][:3] == ["4", "4", "2"]  # queries, judged, queries flagged
    assert cells["2"][:2] == ["2", "2"]
    assert ">Queries flagged</th>" in html
    run.refresh_from_db()
    # Dollars read alike: the total, each stage, to four decimals.
    assert f"<dd>${run.cost_usd:.4f}</dd>" in html and re.fullmatch(r"\$\d\.\d{4}", cells["1"][-1])
    full = curator_client.get(url).content.decode()
    assert "Cascade #" in full and "Estimated at launch: $" in full
    assert "Estimated cost" not in full
    assert "Forwarded when tagged</dt><dd>better, worse</dd>" in full
    assert "Counted as false negatives when tagged</dt><dd>better</dd>" in full
    assert "better: answers the query as well as the positive, or better" in full


def test_a_curator_cancels_a_queued_run(curator_client):
    dataset = small_dataset(queries=1)
    run = cascade_run_create(dataset=dataset, stages=[stage(1)], enqueue=False)
    response = curator_client.post(
        reverse("curation:cascade_run_cancel", args=[run.pk]), HTTP_HX_REQUEST="true"
    )
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert response.status_code == 286


def test_passage_text_is_escaped_on_the_run_page(curator_client):
    dataset = small_dataset(queries=1, name="<script>alert(1)</script>")
    run = cascade_run_create(dataset=dataset, stages=[stage(1)], enqueue=False)
    page = curator_client.get(reverse("curation:cascade_run_detail", args=[run.pk]))
    assert b"<script>alert(1)</script>" not in page.content
    assert b"&lt;script&gt;" in page.content


def test_the_command_estimates_and_runs(capsys):
    dataset = small_dataset(queries=3, name="cmd-cascade")
    call_command("run_cascade", "cmd-cascade", "--estimate-only")
    out = capsys.readouterr().out
    assert "3 queries" in out and "estimated cost" in out.lower()
    assert not CascadeRun.objects.exists()
    with FakeOpenAIServer(sound_judge) as server:
        call_command(
            "run_cascade", "cmd-cascade", "--stages", "1", "--budget", "1",
            "--base-url", server.base_url, "--concurrency", "2",
        )  # fmt: skip
    out = capsys.readouterr().out
    run = CascadeRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED and run.dataset == dataset
    assert len(run.stages) == 1 and str(run.budget_usd) == "1.0000"
    assert "succeeded" in out and "3 queries judged" in out


def test_a_malformed_stage_variable_is_shown_not_a_server_error(curator_client, monkeypatch):
    monkeypatch.setenv("SIEVE_LLM_STAGE1_RPM", "lots")
    dataset = small_dataset(queries=1)
    page = curator_client.get(reverse("curation:cascade_new", args=[dataset.pk]))
    assert page.status_code == 200
    assert b"SIEVE_LLM_STAGE1_RPM" in page.content and b"built-in defaults" in page.content
