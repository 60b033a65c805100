"""A dataset imported into Sieve from a BEIR test split is an evaluation task of its own
(``dataset:<id>``): no copy of the folder in the evaluation data folders, and the same
scores as evaluating the folder itself, with the real all-MiniLM-L6-v2."""

import pytest

from core.models import JobStatus
from curation.datasets.imports import import_job_run
from curation.models import CandidateOrigin, CandidateRole, ImportJob
from evaluation.services.dataset_tasks import dataset_split_read
from evaluation.services.execution import evaluation_run_execute
from evaluation.services.runs import evaluation_run_create
from evaluation.services.task_specs import evaluation_task_search, evaluation_tasks_offline
from tests.conftest import SHARED_DATA
from tests.factories import CandidateFactory
from tests.support.environment import missing

from . import TEST_MAX_SEQ_LENGTH, minilm_path, scifact_mini

pytestmark = pytest.mark.django_db
SMALL = {"max_seq_length": TEST_MAX_SEQ_LENGTH, "precision": "fp32"}


@pytest.fixture
def folder(tmp_path, settings):
    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    root = tmp_path / "eval-data"
    scifact_mini(SHARED_DATA, root / "mini", queries=20, distractors=40)
    settings.SIEVE_EVAL_DATA_DIRS = [root]
    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    settings.SIEVE_EVAL_RESULTS_DIR = tmp_path / "results"
    return root / "mini"


def _import(folder, name: str, split: str = "test") -> ImportJob:
    job = ImportJob.objects.create(
        dataset_name=name, source_path=str(folder), source_name=folder.name, format="beir",
        options={"split": split},
    )  # fmt: skip
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def _run(**kwargs):
    run = evaluation_run_create(enqueue=False, **kwargs)
    evaluation_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    return run


def test_an_imported_test_split_scores_as_its_folder(folder):
    job = _import(folder, "scifact-mini-test")
    spec = f"dataset:{job.dataset_id}"
    offered = {o.spec: o for o in evaluation_tasks_offline()}
    assert offered[spec].name == "scifact-mini-test" and offered[spec].splits == ("test",)
    assert spec in [o.spec for o in evaluation_task_search(query="scifact", registry=False).options]

    # Mined candidates are no judgments of the benchmark: the task ignores them.
    query = job.dataset.queries.first()
    unjudged = job.dataset.corpus.passages.exclude(candidates__query=query).first()
    CandidateFactory(
        query=query, passage=unjudged, role=CandidateRole.NEGATIVE, origin=CandidateOrigin.MINED
    )
    data, revision = dataset_split_read(dataset_id=job.dataset_id)
    assert len(data.queries) == 20 and len(data.qrels) == 20
    assert unjudged.doc_id not in data.qrels[query.query_id]

    from_folder = _run(model_ref=minilm_path(), tasks=["beir:mini"], config=SMALL).results.get()
    from_dataset = _run(model_ref=minilm_path(), tasks=[spec], config=SMALL).results.get()
    assert from_dataset.task == spec and from_dataset.split == "test"
    assert from_dataset.query_count == from_folder.query_count == 20
    assert from_dataset.corpus_size == from_folder.corpus_size
    for metric in ("ndcg_at_10", "recall_at_100", "mrr_at_10"):
        assert getattr(from_dataset, metric) == pytest.approx(
            getattr(from_folder, metric), abs=1e-6
        )
    assert from_dataset.mteb_result["dataset_revision"] == revision


def test_a_training_split_is_not_offered(folder, tmp_path):
    import shutil

    train = tmp_path / "train-copy"
    shutil.copytree(folder, train)
    (train / "qrels" / "test.tsv").rename(train / "qrels" / "train.tsv")
    job = _import(train, "scifact-mini-train", split="train")
    assert f"dataset:{job.dataset_id}" not in {o.spec for o in evaluation_tasks_offline()}
