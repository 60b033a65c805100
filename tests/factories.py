import factory

from curation import models


class CorpusFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Corpus

    name = factory.Sequence(lambda n: f"corpus-{n}")


class PassageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Passage

    corpus = factory.SubFactory(CorpusFactory)
    doc_id = factory.Sequence(lambda n: f"d{n}")
    title = ""
    text = factory.Sequence(lambda n: f"passage text number {n}")
    text_hash = factory.Sequence(lambda n: f"{n:032x}")


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    corpus = factory.SubFactory(CorpusFactory)
    format = models.DatasetFormat.BGE


class QueryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Query

    dataset = factory.SubFactory(DatasetFactory)
    query_id = factory.Sequence(lambda n: f"q{n}")
    text = factory.Sequence(lambda n: f"query number {n}")


class CandidateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Candidate

    query = factory.SubFactory(QueryFactory)
    passage = factory.SubFactory(
        PassageFactory, corpus=factory.SelfAttribute("..query.dataset.corpus")
    )
    role = models.CandidateRole.NEGATIVE
    origin = models.CandidateOrigin.ORIGINAL
    rank = None
    teacher_score = None


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Decision

    candidate = factory.SubFactory(CandidateFactory)
    label = models.DecisionLabel.RELEVANT
    source = models.DecisionSource.CURATOR


class SnapshotFactory(factory.django.DjangoModelFactory):
    """A snapshot row only (no file): for pages that list and link snapshots."""

    class Meta:
        model = models.Snapshot

    dataset = factory.SubFactory(DatasetFactory)
    policy = models.SnapshotPolicy.DEFAULT
    format = models.ExportFormat.BGE
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    manifest = factory.LazyFunction(lambda: {"counts": {"queries": 32, "positives": 32}})
    file_path = factory.Sequence(lambda n: f"missing-{n}.jsonl")


class TrainingRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "training.TrainingRun"

    snapshot = factory.SubFactory(SnapshotFactory)
    base_model = "sentence-transformers/all-MiniLM-L6-v2"
    method = "lora"
    status = "succeeded"
    config = factory.LazyFunction(lambda: {"lora_r": 8, "learning_rate": 0.0002})
    artifact_path = factory.Sequence(lambda n: f"/models/training-{n}/adapter")
    artifact_kind = "adapter"


class EvaluationRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "evaluation.EvaluationRun"

    model_ref = "sentence-transformers/all-MiniLM-L6-v2"
    base_model = factory.SelfAttribute("model_ref")
    model_key = factory.SelfAttribute("model_ref")
    model_label = "all-MiniLM-L6-v2"
    tasks = factory.LazyFunction(lambda: ["beir:scifact"])
    mode = "full"
    status = "succeeded"


class EvalResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "evaluation.EvalResult"

    run = factory.SubFactory(EvaluationRunFactory)
    task = "beir:scifact"
    split = "test"
    main_score = 0.5
    ndcg_at_10 = factory.SelfAttribute("main_score")
