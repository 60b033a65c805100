"""What a mining run's page says while it runs (issue 10: "0 % with no phase text for 55 of
60 s"): every phase names itself as it starts, and the bar moves while the corpus is encoded.
The progress calls are recorded through the job framework's ``echo``, which receives every
call the run makes (the row keeps only some of them, at most twice a second)."""

import pytest

from core.models import JobStatus
from curation.mining.services import mining_run_create, mining_run_execute
from curation.models import CandidateRole, MiningRun
from tests.curation.mining_support import minilm_path
from tests.factories import CandidateFactory, DatasetFactory, PassageFactory, QueryFactory

pytestmark = pytest.mark.django_db

FACTS = [
    ("how do bees make honey", "Bees make honey by evaporating flower nectar in the hive."),
    ("why is the sky blue", "The sky looks blue because air scatters short blue wavelengths."),
    ("what causes tides", "Tides are caused by the gravitational pull of the moon and sun."),
]
OTHERS = [
    "Wasps do not make honey but build paper nests.",
    "Sunsets look red because light crosses more air.",
    "The moon has no atmosphere and no weather.",
    "Honey never spoils when it is stored sealed.",
    "Ocean currents are driven by wind and salinity.",
    "Violet light is scattered even more than blue light.",
    "Bumblebees store only a little honey for a few days.",
]


@pytest.fixture
def dataset(settings, tmp_path):
    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    settings.SIEVE_EMBEDDING_PRECISION = "fp32"
    dataset = DatasetFactory(name="progress", query_count=3, positive_count=3)
    for i, (question, answer) in enumerate(FACTS):
        query = QueryFactory(dataset=dataset, query_id=f"q{i}", text=question)
        CandidateFactory(query=query, role=CandidateRole.POSITIVE, passage__text=answer)
    for text in OTHERS:
        PassageFactory(corpus=dataset.corpus, text=text)
    return dataset


class Recorder:
    def __init__(self):
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        self.calls.append((fraction, message))

    def first(self, prefix: str) -> int:
        return next(i for i, (_, message) in enumerate(self.calls) if message.startswith(prefix))


def _mine(dataset, recorder) -> MiningRun:
    # 10 passages, batches of 4: the corpus is encoded in several slices, the first one batch.
    run = mining_run_create(
        dataset=dataset, model_name=minilm_path(), batch_size=4, num_negatives=2, range_max=5,
        enqueue=False,
    )  # fmt: skip
    mining_run_execute(run_id=run.pk, echo=recorder)
    run.refresh_from_db()
    return run


def test_every_phase_names_itself_and_the_bar_moves_while_the_corpus_is_encoded(dataset):
    recorder = Recorder()
    run = _mine(dataset, recorder)
    assert run.status == JobStatus.SUCCEEDED, run.error
    calls = recorder.calls

    # Something to read from the very first report, before the model is even loaded.
    assert calls[0] == (0.0, "loading the embedding model")
    assert all(message for _, message in calls)
    # The phases, in the order they happen.
    order = [
        recorder.first(prefix)
        for prefix in (
            "loading the embedding model",
            "reading the corpus",
            "encoding the corpus",
            "building the search index",
            "encoding queries 1–3 of 3",
            "searching the corpus for queries 1–3 of 3",
            "writing the negatives and judgments of queries 1–3 of 3",
            "mined 3 of 3 queries",
        )
    ]
    assert order == sorted(order)
    # Encoding the corpus: N of 10 passages, and the bar moves before the encoding is done
    # (the first slice is one batch of 4).
    encoding = [(f, m) for f, m in calls if m.startswith("encoding the corpus")]
    assert encoding[0][1] == "encoding the corpus: 0 of 10 passages"
    assert encoding[-1][1] == "encoding the corpus: 10 of 10 passages"
    assert "encoding the corpus: 4 of 10 passages" in [m for _, m in encoding]
    assert all(0 < f < 1 for f, _ in encoding)
    # The bar never goes back.
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_second_run_finds_the_corpus_in_the_cache_and_says_what_it_does(dataset):
    _mine(dataset, Recorder())
    recorder = Recorder()
    run = _mine(dataset, recorder)
    assert run.status == JobStatus.SUCCEEDED, run.error
    messages = [m for _, m in recorder.calls]
    assert messages[0] == "loading the embedding model"
    assert not any(m.startswith("encoding the corpus") for m in messages)  # cache hit
    assert any(m.startswith("building the search index over 10 passages") for m in messages)
    assert run.stats["corpus_encoded"] is False
