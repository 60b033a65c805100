"""Sieve's data model. Sized for 10M candidates: big integer keys, the indexes that the
importer, exports and review queries use, and counts kept on the parent rows so list pages
never COUNT over millions of rows.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import Job


class Corpus(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    passage_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "corpora"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Passage(models.Model):
    """A document. ``doc_id`` is the source's id, or ``h:<hash of the text>`` for formats
    without ids (BGE, sentence-transformers), so the same text is stored once per corpus."""

    # No index of its own: the unique (corpus, doc_id) index starts with corpus_id and serves
    # every lookup by corpus; a second one would only slow down every passage insert.
    corpus = models.ForeignKey(
        Corpus, on_delete=models.CASCADE, related_name="passages", db_index=False
    )
    doc_id = models.CharField(max_length=200)
    title = models.TextField(blank=True)
    text = models.TextField()
    # blake2b-128 of title + "\n" + text: compares a re-imported passage without reading text.
    text_hash = models.CharField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["corpus", "doc_id"], name="passage_unique_doc_id"),
        ]

    def __str__(self) -> str:
        return self.doc_id


class DatasetFormat(models.TextChoices):
    BGE = "bge", "BGE / FlagEmbedding jsonl"
    TEVATRON = "tevatron", "Tevatron jsonl"
    BEIR = "beir", "BEIR folder"
    SENTENCE_TRANSFORMERS = "sentence_transformers", "sentence-transformers triplets"


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    corpus = models.ForeignKey(Corpus, on_delete=models.PROTECT, related_name="datasets")
    source = models.CharField(max_length=500, blank=True)
    format = models.CharField(max_length=32, choices=DatasetFormat.choices)
    description = models.TextField(blank=True)
    query_count = models.BigIntegerField(default=0)
    positive_count = models.BigIntegerField(default=0)
    negative_count = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Query(models.Model):
    """``query_id`` is the source's id, or ``h:<hash of the text>`` for formats without ids."""

    # No index of its own: the unique (dataset, query_id) index starts with dataset_id.
    dataset = models.ForeignKey(
        Dataset, on_delete=models.CASCADE, related_name="queries", db_index=False
    )
    query_id = models.CharField(max_length=200)
    text = models.TextField()

    class Meta:
        verbose_name_plural = "queries"
        constraints = [
            models.UniqueConstraint(fields=["dataset", "query_id"], name="query_unique_query_id"),
        ]

    def __str__(self) -> str:
        return self.query_id


class CandidateRole(models.TextChoices):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class CandidateOrigin(models.TextChoices):
    ORIGINAL = "original"  # as imported
    MINED = "mined"  # found by a mining run
    GENERATED = "generated"  # written by an LLM (synthetic triplets)


class Candidate(models.Model):
    """One query × passage pair: the unit that is judged."""

    # No separate index on query: the (query, passage) unique index serves every lookup by
    # query, and each extra index costs ~0.6 s per 100k candidates on import.
    query = models.ForeignKey(
        Query, on_delete=models.CASCADE, related_name="candidates", db_index=False
    )
    passage = models.ForeignKey(Passage, on_delete=models.PROTECT, related_name="candidates")
    role = models.CharField(max_length=16, choices=CandidateRole.choices)
    origin = models.CharField(
        max_length=16, choices=CandidateOrigin.choices, default=CandidateOrigin.ORIGINAL
    )
    # 1-based position among the query's negatives (as imported or mined); null for positives.
    rank = models.IntegerField(null=True, blank=True)
    # Teacher model score (BGE's pos_scores / neg_scores, or the mining model's similarity).
    teacher_score = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["query", "passage"], name="candidate_unique_pair"),
        ]
        # The FK on passage already has its index (reverse lookups, PROTECT checks).

    def __str__(self) -> str:
        return f"candidate #{self.pk} ({self.role}, query #{self.query_id})"


class Verdict(models.TextChoices):
    RELEVANT = "relevant"  # for a negative: a false negative
    NOT_RELEVANT = "not_relevant"
    PARTLY_RELEVANT = "partly_relevant"
    UNSURE = "unsure"


class RaterKind(models.TextChoices):
    HUMAN = "human"
    MACHINE = "machine"


class Judgment(models.Model):
    """APPEND-ONLY: one row per verdict of one rater, human or machine. Never updated; the
    current status of a candidate is derived from its judgments and decisions.

    ``rater`` names who judged: ``user:<username>`` or a machine stage such as
    ``llm:gpt-4o-mini:stage1`` / ``teacher:all-minilm-l6-v2:margin``.
    """

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="judgments")
    rater = models.CharField(max_length=200)
    rater_kind = models.CharField(max_length=16, choices=RaterKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    # Machine verdict detail, e.g. RLHN's "better" / "worse" tag.
    tag = models.CharField(max_length=32, blank=True)
    rationale = models.TextField(blank=True)
    note = models.TextField(blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.CharField(max_length=64, blank=True)
    prompt_hash = models.CharField(max_length=64, blank=True)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    latency_ms = models.IntegerField(null=True, blank=True)
    # Which run wrote it: "cascade:12", "mining:3", "campaign:5".
    source_run = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["candidate", "rater"], name="judgment_candidate_rater_idx"),
            models.Index(fields=["rater", "created_at"], name="judgment_rater_time_idx"),
        ]

    def __str__(self) -> str:
        return f"judgment #{self.pk} by {self.rater}: {self.verdict}"


class DecisionLabel(models.TextChoices):
    RELEVANT = "relevant"  # a negative with this label is a confirmed false negative
    NOT_RELEVANT = "not_relevant"


class DecisionSource(models.TextChoices):
    ADJUDICATION = "adjudication"  # a curator settled a human disagreement
    CURATOR = "curator"  # a curator decided directly
    CASCADE = "cascade"  # a curator accepted one LLM cascade verdict
    REVIEW = "review"  # human consensus in a review campaign
    APPROVAL = "approval"  # a machine verdict applied by an Approval (never a person)


# Every source a person stands behind: these win over approved machine verdicts.
HUMAN_DECISION_SOURCES = (
    DecisionSource.ADJUDICATION,
    DecisionSource.CURATOR,
    DecisionSource.CASCADE,
    DecisionSource.REVIEW,
)


class Decision(models.Model):
    """APPEND-ONLY final label of a candidate. Snapshots read decisions, never raw judgments.

    In force for a candidate: its latest decision made by a person (``approval`` is null);
    only when there is none, its latest decision from an approval that is in force. A
    machine decision keeps its provenance: the approval (which names the cascade run and
    stage), the judgment it copies and the LLM call that produced it."""

    # No database constraint: PostgreSQL checks a foreign key by locking the referenced row
    # (FOR KEY SHARE), which for an approval means locking a million candidates and took
    # longer than writing the decisions (bench/approval_bench.py: 3.2 s of 7.8 s per 520k
    # rows). Decisions are written only for candidates read in the same statement or
    # request, and candidates are deleted only through Django (a dataset's deletion), whose
    # collector deletes their decisions first.
    candidate = models.ForeignKey(
        Candidate, on_delete=models.CASCADE, related_name="decisions", db_constraint=False
    )
    label = models.CharField(max_length=16, choices=DecisionLabel.choices)
    source = models.CharField(max_length=16, choices=DecisionSource.choices)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Machine decisions only. No index of their own: they are read through the candidate
    # (decision_latest_idx), and an approval keeps its own counts. No database constraint
    # either: an approval writes a million rows at once, and three more foreign-key checks
    # per row cost more than the insert itself (bench/approval_bench.py); what they point to
    # is append-only (judgments, LLM calls) or never deleted (approvals: PROTECT in Django).
    approval = models.ForeignKey(
        "Approval",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    judgment = models.ForeignKey(
        "Judgment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    llm_call = models.ForeignKey(
        "LLMCall",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        indexes = [models.Index(fields=["candidate", "-id"], name="decision_latest_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(source="approval", approval__isnull=False)
                | (~Q(source="approval") & Q(approval__isnull=True)),
                name="decision_approval_source",
            )
        ]

    def __str__(self) -> str:
        return (
            f"decision #{self.pk}: {self.label} on candidate #{self.candidate_id} ({self.source})"
        )


class ImportJob(Job):
    task_name = "curation.tasks.import_job_run"
    dataset_name = models.CharField(max_length=200)
    corpus_name = models.CharField(max_length=200, blank=True)
    format = models.CharField(max_length=32, choices=DatasetFormat.choices, blank=True)
    # A file or BEIR folder on the server (CLI), or the stored upload (web, API).
    source_path = models.CharField(max_length=1000)
    source_name = models.CharField(max_length=300, blank=True)
    options = models.JSONField(default=dict, blank=True)
    source_sha256 = models.CharField(max_length=64, blank=True)
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="import_jobs"
    )

    def __str__(self) -> str:
        return f"import #{self.pk} {self.dataset_name}"


class SnapshotPolicy(models.TextChoices):
    DEFAULT = "default", "default: keep every candidate as imported"
    REMOVE = "remove", "remove: drop queries with a confirmed false negative"
    REMOVE_HN = "remove_hn", "remove_hn: drop only the false negatives"
    RELABEL = "relabel", "relabel: move false negatives to the positives"


class ExportFormat(models.TextChoices):
    BGE = "bge", "BGE / FlagEmbedding jsonl"
    TEVATRON = "tevatron", "Tevatron jsonl"
    SENTENCE_TRANSFORMERS = "sentence_transformers", "sentence-transformers triplets jsonl"


class Snapshot(models.Model):
    """An immutable, frozen export of a dataset under a policy. Training and evaluation point
    to one. ``sha256`` is the digest of the file's bytes; ``manifest`` its counts."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="snapshots")
    policy = models.CharField(max_length=16, choices=SnapshotPolicy.choices)
    max_false_negatives = models.IntegerField(default=7)
    format = models.CharField(max_length=32, choices=ExportFormat.choices)
    sha256 = models.CharField(max_length=64)
    manifest = models.JSONField(default=dict)
    # Relative to SIEVE_SNAPSHOT_DIR.
    file_path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_false_negatives__gte=0), name="snapshot_k_not_negative"
            ),
            # The same content under the same settings is one snapshot, not two.
            models.UniqueConstraint(
                fields=["dataset", "policy", "max_false_negatives", "format", "sha256"],
                name="snapshot_unique_content",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset} · {self.policy} · {self.sha256[:12]}"


class ExportJob(Job):
    task_name = "curation.tasks.export_job_run"
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="export_jobs")
    policy = models.CharField(max_length=16, choices=SnapshotPolicy.choices)
    max_false_negatives = models.IntegerField(default=7)
    format = models.CharField(max_length=32, choices=ExportFormat.choices)
    # The share of queries held out for evaluation and its seed (datasets/held_out.py).
    held_out = models.FloatField(default=0.0)
    held_out_seed = models.IntegerField(default=0)
    snapshot = models.ForeignKey(
        Snapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="export_jobs"
    )

    def __str__(self) -> str:
        return f"export #{self.pk} {self.dataset} {self.policy}"


# --- Data engine: mining, the LLM cascade, synthesis --------------------------------------


class MiningSampling(models.TextChoices):
    TOP = "top"
    RANDOM = "random"


class MiningRun(Job):
    """Mine hard negatives for a dataset's queries from its corpus with an embedding model.
    Mined negatives become ``origin=mined`` candidates with their rank and teacher score; the
    teacher margin is also written as a stage-0 machine judgment."""

    task_name = "curation.tasks.mining_run"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="mining_runs")
    model_name = models.CharField(max_length=500, help_text="Hugging Face id or local folder")
    query_prefix = models.CharField(max_length=200, blank=True)
    passage_prefix = models.CharField(max_length=200, blank=True)
    batch_size = models.IntegerField(default=64)
    max_seq_length = models.IntegerField(null=True, blank=True)
    approximate = models.BooleanField(default=False, help_text="IVF index instead of exact search")
    range_min = models.IntegerField(default=0)
    range_max = models.IntegerField(default=100)
    num_negatives = models.IntegerField(default=15)
    absolute_margin = models.FloatField(null=True, blank=True)
    relative_margin = models.FloatField(null=True, blank=True)
    max_score = models.FloatField(null=True, blank=True)
    min_score = models.FloatField(null=True, blank=True)
    sampling = models.CharField(max_length=8, choices=MiningSampling.choices, default="top")
    seed = models.IntegerField(default=0)
    # Stage-0 judge: a negative scoring at least this fraction of its positive's score is
    # flagged "relevant" by the teacher (0.95 = NV-Retriever's rule). Null: no judgments.
    teacher_flag_ratio = models.FloatField(null=True, blank=True, default=0.95)

    def __str__(self) -> str:
        return f"mining #{self.pk} {self.dataset} {self.model_name}"


class CascadeMode(models.TextChoices):
    ONLINE = "online"
    BATCH = "batch"  # OpenAI Batch API, half price, results within 24 h


class CascadeRun(Job):
    """Run a cascade of LLM judges over a dataset's queries. ``stages`` is a list of stage
    settings (name, base_url, api_key_env, model, price_in_per_m, price_out_per_m,
    concurrency, rpm, json_mode, max_tokens, temperature); stage 1 judges every query,
    each later stage only the queries the previous stage flagged."""

    task_name = "curation.tasks.cascade_run"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="cascade_runs")
    stages = models.JSONField(default=list)
    mode = models.CharField(max_length=8, choices=CascadeMode.choices, default="online")
    # Which verdict tags send a query on to the next stage, and which mark a false negative.
    forward_tags = models.JSONField(default=list)
    false_negative_tags = models.JSONField(default=list)
    max_negatives = models.IntegerField(default=25)
    # Ground-truth passages shown per prompt, first by id; null: all of them (RLHN's recipe).
    max_positives = models.IntegerField(null=True, blank=True)
    budget_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    estimate = models.JSONField(default=dict, blank=True)  # dry-run cost estimate
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)

    class Meta(Job.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(max_positives__isnull=True) | Q(max_positives__gte=1),
                name="cascade_run_max_positives_at_least_one",
            ),
        ]

    def __str__(self) -> str:
        return f"cascade #{self.pk} {self.dataset}"


class CascadeItemStatus(models.TextChoices):
    PENDING = "pending"
    JUDGED = "judged"
    UNPARSEABLE = "unparseable"  # after the retry: recorded, never read as "no false negatives"
    FAILED = "failed"  # the endpoint kept failing
    SKIPPED = "skipped"  # budget reached before this query


class CascadeItem(models.Model):
    """One query at one stage of one cascade run: the unit of progress and of resume."""

    run = models.ForeignKey(CascadeRun, on_delete=models.CASCADE, related_name="items")
    stage = models.PositiveSmallIntegerField()
    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=16, choices=CascadeItemStatus.choices, default=CascadeItemStatus.PENDING
    )
    flagged = models.BooleanField(default=False)
    # Candidate ids in the order they were numbered Doc (1), Doc (2), ... in the prompt.
    candidate_ids = models.JSONField(default=list)
    call = models.ForeignKey("LLMCall", null=True, blank=True, on_delete=models.SET_NULL)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "stage", "query"], name="cascade_item_unique"),
        ]
        indexes = [
            models.Index(fields=["run", "stage", "status"], name="cascade_item_progress_idx")
        ]

    def __str__(self) -> str:
        return f"cascade #{self.run_id} stage {self.stage} query #{self.query_id}: {self.status}"


class LLMCall(models.Model):
    """Response cache and cost ledger. ``key`` = sha256 of (endpoint, model, messages,
    parameters): a repeated or resumed run finds its answer here and pays nothing twice."""

    key = models.CharField(max_length=64, unique=True)
    base_url = models.CharField(max_length=500)
    model = models.CharField(max_length=200)
    request = models.JSONField()
    response_text = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    input_tokens = models.IntegerField(default=0)
    output_tokens = models.IntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.IntegerField(default=0)
    attempts = models.IntegerField(default=1)
    batch = models.BooleanField(default=False)
    cascade_run = models.ForeignKey(
        CascadeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    stage = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["cascade_run", "stage"], name="llmcall_run_stage_idx")]

    def __str__(self) -> str:
        return f"LLM call #{self.pk} {self.model} ({self.key[:12]})"


class SynthesisNegativeMode(models.TextChoices):
    GENERATE = "generate"  # the LLM writes a hard negative (corpus-free)
    MINE = "mine"  # the teacher mines one from the corpus


class SynthesisRun(Job):
    """Write synthetic triplets: for sampled passages an LLM writes a query, then a hard
    negative is generated or mined; a teacher model filters them; survivors enter review as
    ``origin=generated`` candidates of ``dataset``."""

    task_name = "curation.tasks.synthesis_run"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="synthesis_runs")
    sample_size = models.IntegerField(default=100)
    seed = models.IntegerField(default=0)
    generator = models.JSONField(default=dict)  # stage settings, as in CascadeRun.stages
    negative_mode = models.CharField(
        max_length=8, choices=SynthesisNegativeMode.choices, default="generate"
    )
    teacher_model = models.CharField(max_length=500, blank=True)
    # Keep a triplet only if its positive ranks in the top k for its own query …
    top_k = models.IntegerField(default=3)
    # … and its negative scores at most this fraction of the positive's score.
    negative_max_ratio = models.FloatField(default=0.95)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    # Stop before a chunk whose projected cost would pass this (None: no cap).
    budget_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)

    def __str__(self) -> str:
        return f"synthesis #{self.pk} {self.dataset}"


class Approval(Job):
    """One cascade run's machine verdicts applied to its whole dataset as decisions
    (source ``approval``), because a reviewed sample showed the judges agree with people.

    ``stage`` null means the cascade's final verdict (per candidate, the highest stage of the
    run that judged it). The gate (thresholds and the measured figures it was checked on) is
    frozen in ``gate`` when the approval is made; ``agreement_report_id`` names the review
    app's report it came from (an id, not a key: review sits above curation). A failing gate
    is only passed with a ``reason``, shown on every snapshot that uses the approval.

    The job writes the decisions in chunks of queries; snapshots use an approval only once it
    succeeded and while it is not revoked. Revoking never deletes: later snapshots leave the
    approval out, earlier ones keep their bytes and their manifest."""

    task_name = "curation.tasks.approval_apply"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="approvals")
    cascade_run = models.ForeignKey(CascadeRun, on_delete=models.PROTECT, related_name="approvals")
    stage = models.PositiveSmallIntegerField(null=True, blank=True)
    agreement_report_id = models.BigIntegerField(null=True, blank=True)
    gate = models.JSONField(default=dict, blank=True)
    gate_passed = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    decision_count = models.BigIntegerField(default=0)
    false_negative_count = models.BigIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoke_reason = models.TextField(blank=True)

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["dataset", "-id"], name="approval_dataset_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(gate_passed=True) | ~Q(reason=""), name="approval_failing_gate_reason"
            )
        ]

    def __str__(self) -> str:
        stage = f"stage {self.stage}" if self.stage else "final verdicts"
        return f"approval #{self.pk} of cascade #{self.cascade_run_id} ({stage})"
