"""Reads for review campaigns, the review page and the adjudication queue.

Lists are keyset-paginated; per-item verdict tallies are correlated subqueries on the
(item, user) submission index, so a page of the adjudication queue reads only the items it
shows (and the ones it walks past), never the whole campaign at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    Count,
    Exists,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Coalesce

from core.pagination import KeysetPage, keyset_paginate
from core.roles import Role, user_roles_known
from curation.models import (
    Candidate,
    CandidateRole,
    Dataset,
    Decision,
    DecisionSource,
    Judgment,
    Passage,
    Query,
    Verdict,
)
from review.models import (
    CampaignStatus,
    ReviewCampaign,
    ReviewItem,
    ReviewSubmission,
    Stratum,
)
from review.reveal import Reveal, machine_reveals
from review.services.campaigns import cascade_run_default, stratum_candidates
from review.services.queue import SubqueryCount, submission_last_active
from review.services.queue_rules import QUERY_EDIT_TAG

# --- campaigns -----------------------------------------------------------------------------


def campaign_list_page(*, after: int | None = None, before: int | None = None) -> KeysetPage:
    return keyset_paginate(
        ReviewCampaign.objects.select_related("dataset", "created_by"),
        key="id",
        after=after,
        before=before,
        descending=True,
    )


def campaigns_for_annotator(*, user, limit: int = 100) -> list[ReviewCampaign]:
    """The active campaigns ``user`` is an annotator of, newest first."""
    return list(
        ReviewCampaign.objects.filter(annotators=user, status=CampaignStatus.ACTIVE)
        .select_related("dataset")
        .order_by("-id")[:limit]
    )


def campaign_get(*, campaign_id: int) -> ReviewCampaign:
    """Raises ``ReviewCampaign.DoesNotExist``."""
    return ReviewCampaign.objects.select_related("dataset", "cascade_run", "created_by").get(
        pk=campaign_id
    )


def campaign_is_annotator(*, campaign: ReviewCampaign, user) -> bool:
    return campaign.annotators.filter(pk=user.pk).exists()


@cache
def _reviewer_campaign_sql() -> str:
    annotators = ReviewCampaign.annotators.through._meta
    memberships = get_user_model().groups.through._meta
    group = memberships.get_field("group").related_model._meta
    role = (
        f"EXISTS (SELECT 1 FROM {memberships.db_table} m JOIN {group.db_table} g"
        f" ON g.id = m.{memberships.get_field('group').column}"
        f" WHERE m.{memberships.get_field('user').column} = %s AND g.name = %s)"
    )
    return (
        f"SELECT c.*, EXISTS (SELECT 1 FROM {annotators.db_table} a"
        f" WHERE a.{annotators.get_field('reviewcampaign').column} = c.id"
        f" AND a.{annotators.get_field('user').column} = %s) AS is_annotator, "
        + ", ".join(f"{role} AS role_{r.value}" for r in Role)
        + f" FROM {ReviewCampaign._meta.db_table} c WHERE c.id = %s"
    )


def reviewer_campaign_get(*, campaign_id: int, user) -> ReviewCampaign | None:
    """The campaign row with ``is_annotator`` (whether ``user`` is one of its annotators), and
    the user's role groups, all in ONE statement: the review page's every verdict checks all
    three (three queries before: issue 13 measured the checks at 14 % of a verdict's
    request). The roles are handed to ``core.roles`` for the rest of the request."""
    params = [user.pk]
    for role in Role:
        params += [user.pk, role.value]
    rows = list(ReviewCampaign.objects.raw(_reviewer_campaign_sql(), [*params, campaign_id]))
    if not rows:
        return None
    campaign = rows[0]
    user_roles_known(user, [r.value for r in Role if getattr(campaign, f"role_{r.value}")])
    campaign.is_annotator = bool(campaign.is_annotator)
    return campaign


@dataclass
class StratumCount:
    stratum: str
    label: str
    requested: int
    items: int
    done: int


def campaign_strata_counts(*, campaign: ReviewCampaign) -> list[StratumCount]:
    """Items and finished items per stratum: one grouped query over the campaign's items."""
    rows = {
        row["stratum"]: row
        for row in ReviewItem.objects.filter(campaign=campaign)
        .values("stratum")
        .annotate(items=Count("id"), done=Count("id", filter=Q(done=True)))
        .order_by()
    }
    out = []
    for value, label in Stratum.choices:
        requested = int(campaign.strata.get(value, 0))
        row = rows.get(value, {})
        if requested or row:
            out.append(
                StratumCount(value, label, requested, row.get("items", 0), row.get("done", 0))
            )
    return out


# Counting a stratum stops here: an exact count of a big dataset's unflagged negatives would
# cost a scan of them all, and "10,000+" is all the form needs to say.
STRATUM_COUNT_CAP = 10_000


@dataclass
class StratumAvailable:
    stratum: str
    label: str
    count: int
    capped: bool

    @property
    def shown(self) -> str:
        return f"{self.count:,}" + ("+" if self.capped else "")


@dataclass
class StrataAvailable:
    dataset: Dataset
    cascade_run_id: int | None
    strata: list[StratumAvailable]


def strata_available(*, dataset: Dataset, cap: int = STRATUM_COUNT_CAP) -> StrataAvailable:
    """How many candidates each stratum of ``dataset`` holds, for the campaign form: the
    strata a new campaign would sample (the dataset's latest cascade run), each counted in
    SQL with the sampling's own queryset, up to ``cap`` (one statement per stratum)."""
    run = cascade_run_default(dataset=dataset)
    rows = []
    for value, label in Stratum.choices:
        candidates = stratum_candidates(dataset=dataset, stratum=value, cascade_run=run)
        count = candidates.order_by().values("pk")[: cap + 1].count()
        rows.append(StratumAvailable(value, label, min(count, cap), count > cap))
    return StrataAvailable(dataset, run.pk if run else None, rows)


def campaign_annotators(*, campaign: ReviewCampaign) -> list:
    """The campaign's annotators with how many items each has answered (active answers)."""
    answered = ReviewSubmission.objects.filter(
        user_id=OuterRef("pk"), item__campaign=campaign, undone_at__isnull=True
    ).values("pk")
    return list(campaign.annotators.annotate(answered=SubqueryCount(answered)).order_by("username"))


# --- the review page -----------------------------------------------------------------------


@dataclass
class ItemView:
    item: ReviewItem
    candidate: Candidate
    query_text: str
    # Positive passages of the query (for a synthetic item: the item's own candidate).
    positives: list[Candidate] = field(default_factory=list)
    # The triplet's negatives (synthetic items only).
    negatives: list[Candidate] = field(default_factory=list)
    # What the machine judges said (empty unless revealed: see review_item_views).
    machine: Reveal = field(default_factory=Reveal)
    # List-wise pane: the user's blind answer to the item (they undid it after the reveal).
    blind_answer: ReviewSubmission | None = None

    @property
    def synthetic(self) -> bool:
        return self.item.stratum == Stratum.SYNTHETIC


@cache
def _siblings_sql() -> tuple[str, list]:
    """Every candidate of some candidates' queries with its passage and query, and how to
    cut each row into the three models (``Model.from_db``, as the ORM does)."""
    parts, select = [], []
    for alias, model in (("c", Candidate), ("p", Passage), ("q", Query)):
        fields = model._meta.concrete_fields
        parts.append((model, [f.attname for f in fields], len(select)))
        select += [f"{alias}.{f.column}" for f in fields]
    c, p, q = (m._meta.db_table for m in (Candidate, Passage, Query))
    sql = (
        f"SELECT {', '.join(select)} FROM {c} c JOIN {p} p ON p.id = c.passage_id"
        f" JOIN {q} q ON q.id = c.query_id"
        f" WHERE c.query_id IN (SELECT query_id FROM {c} WHERE id IN ({{ids}}))"
        " ORDER BY c.query_id, c.role, c.rank, c.id"
    )
    return sql, parts


def _candidates_with_siblings(candidate_ids: list[int]) -> list[Candidate]:
    """``Candidate.objects.filter(query_id__in=…).select_related("passage", "query")``,
    written as SQL: on the review page the ORM spent ~5 ms compiling it and building the
    objects, ten times what PostgreSQL needed."""
    sql, parts = _siblings_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql.format(ids=", ".join(["%s"] * len(candidate_ids))), candidate_ids)
        rows = cursor.fetchall()
    db = connection.alias
    out = []
    for row in rows:
        candidate, passage, query = (
            model.from_db(db, names, row[start : start + len(names)])
            for model, names, start in parts
        )
        candidate.passage, candidate.query = passage, query
        out.append(candidate)
    return out


def review_item_views(
    *,
    items: list[ReviewItem],
    machine_for: set[int] = frozenset(),
    cascade_run_id: int | None = None,
    max_passages: int = 3,
) -> list[ItemView]:
    """What the review page shows for each item, in two queries whatever the number of
    items. Machine raters' verdicts and rationales are read only for the items whose id is in
    ``machine_for``: in a blind campaign the view leaves an item out until the user has
    answered it, so they are never in the HTML before that. ``cascade_run_id``: the campaign's
    run, whose stages the reveal shows first (``review/reveal.py``)."""
    if not items:
        return []
    # Every candidate of the items' queries (a query has tens at most), the items' own
    # candidates among them, in one statement.
    siblings: dict[int, list[Candidate]] = {}
    candidates: dict[int, Candidate] = {}
    for row in _candidates_with_siblings([item.candidate_id for item in items]):
        siblings.setdefault(row.query_id, []).append(row)
        candidates[row.pk] = row
    revealed = [item.candidate_id for item in items if item.pk in machine_for]
    machine = (
        machine_reveals(candidate_ids=revealed, cascade_run_id=cascade_run_id) if revealed else {}
    )
    views = []
    for item in items:
        candidate = candidates[item.candidate_id]
        others = [c for c in siblings[candidate.query_id] if c.pk != candidate.pk]
        if item.stratum == Stratum.SYNTHETIC:
            positives = [candidate]
            negatives = [c for c in others if c.role == CandidateRole.NEGATIVE][:max_passages]
        else:
            positives = [c for c in others if c.role == CandidateRole.POSITIVE][:max_passages]
            negatives = []
        views.append(
            ItemView(
                item=item,
                candidate=candidate,
                query_text=candidate.query.text,
                positives=positives,
                negatives=negatives,
                machine=machine.get(candidate.pk, Reveal()) if item.pk in machine_for else Reveal(),
            )
        )
    return views


@dataclass
class LastAnswer:
    submission: ReviewSubmission
    view: ItemView


@dataclass
class Pane:
    view: ItemView | None
    last: LastAnswer | None
    # The user's blind answer to the item on screen (they undid it after the reveal): a new
    # answer is recorded as a revision of it.
    blind_answer: ReviewSubmission | None = None


def blind_answer_of(*, item: ReviewItem, user) -> ReviewSubmission | None:
    """``user``'s blind answer to ``item``, if they gave one. An item served by the queue
    knows its id already (``blind_answer_id``): then only a revision costs a query."""
    known = getattr(item, "blind_answer_id", ...)
    if known is None:
        return None
    answers = ReviewSubmission.objects.select_related("judgment")
    if known is ...:
        return answers.filter(item=item, user=user, blind=True).first()
    return answers.filter(pk=known).first()


def review_pane(
    *,
    campaign: ReviewCampaign,
    user,
    item: ReviewItem | None,
    last: ReviewSubmission | None = None,
) -> Pane:
    """The item to judge now and the user's latest active answer (with the machine verdicts
    revealed: they answered it). The current item's machine verdicts only in open campaigns.
    ``last``: the answer just saved, when the caller has it (saves looking it up)."""
    submission = last or submission_last_active(campaign=campaign, user=user)
    items = [i for i in (item, submission.item if submission else None) if i is not None]
    reveal = {submission.item_id} if submission else set()
    if item is not None and not campaign.blind:
        reveal.add(item.pk)
    views = {
        view.item.pk: view
        for view in review_item_views(
            items=items, machine_for=reveal, cascade_run_id=campaign.cascade_run_id
        )
    }
    return Pane(
        view=views[item.pk] if item is not None else None,
        last=LastAnswer(submission, views[submission.item_id]) if submission else None,
        blind_answer=blind_answer_of(item=item, user=user) if item is not None else None,
    )


@dataclass
class ListPane:
    """The list-wise pane (``review/services/listwise.py``): one query, its positives, the
    rows to judge, and the answers just saved with the judges' verdicts revealed."""

    query_text: str = ""
    positives: list[Candidate] = field(default_factory=list)
    rows: list[ItemView] = field(default_factory=list)
    last: list[LastAnswer] = field(default_factory=list)


def review_list_pane(
    *,
    campaign: ReviewCampaign,
    user,
    items: list[ReviewItem],
    last: list[ReviewSubmission] | None = None,
) -> ListPane:
    """What the list-wise pane shows, in two statements for the passages and the reveal
    whatever the number of rows. ``last``: the answers just saved (else the user's latest
    answer). As on the one-item page, a row's machine verdicts are read only in an open
    campaign; in a blind one only those of answers already given are."""
    if last is None:
        latest = submission_last_active(campaign=campaign, user=user)
        last = [latest] if latest else []
    answered = [submission.item for submission in last]
    reveal = {item.pk for item in answered}
    if not campaign.blind:
        reveal |= {item.pk for item in items}
    views = {
        view.item.pk: view
        for view in review_item_views(
            items=[*items, *answered], machine_for=reveal, cascade_run_id=campaign.cascade_run_id
        )
    }
    pane = ListPane(
        # In the order the query's candidates were ranked (imported or mined).
        rows=sorted((views[i.pk] for i in items), key=lambda v: (v.candidate.rank or 0, v.item.pk)),
        last=[LastAnswer(submission, views[submission.item_id]) for submission in last],
    )
    if pane.rows:
        # A synthetic row's "positive" is its own candidate: take a plain row's if any.
        first = next((row for row in pane.rows if not row.synthetic), pane.rows[0])
        pane.query_text, pane.positives = first.query_text, first.positives
    blind_ids = [i.blind_answer_id for i in items if getattr(i, "blind_answer_id", None)]
    if blind_ids:
        blind = ReviewSubmission.objects.filter(pk__in=blind_ids).select_related("judgment")
        for submission in blind:
            views[submission.item_id].blind_answer = submission
    return pane


# --- adjudication --------------------------------------------------------------------------


def _active_human(item_ref) -> QuerySet[Judgment]:
    return Judgment.objects.filter(submission__item_id=item_ref, submission__undone_at__isnull=True)


def items_with_tallies(*, campaign: ReviewCampaign) -> QuerySet[ReviewItem]:
    """The campaign's finished items, each annotated with its active human verdict counts,
    whether its edits agree (synthetic triplets) and whether a review or adjudication
    Decision already settled it (one made since the campaign began)."""
    active = _active_human(OuterRef("pk"))
    edits = active.filter(tag=QUERY_EDIT_TAG)
    settled = Decision.objects.filter(
        candidate_id=OuterRef("candidate_id"),
        source__in=[DecisionSource.REVIEW, DecisionSource.ADJUDICATION],
        created_at__gte=campaign.created_at,
    )
    return ReviewItem.objects.filter(campaign=campaign, done=True).annotate(
        n_relevant=SubqueryCount(active.filter(verdict=Verdict.RELEVANT).values("pk")),
        n_not_relevant=SubqueryCount(active.filter(verdict=Verdict.NOT_RELEVANT).values("pk")),
        n_edits=SubqueryCount(edits.values("pk")),
        edit_min=Coalesce(
            Subquery(
                edits.order_by()
                .values("submission__item_id")
                .annotate(m=Min("rationale"))
                .values("m")
            ),
            Value(""),
            output_field=TextField(),
        ),
        edit_max=Coalesce(
            Subquery(
                edits.order_by()
                .values("submission__item_id")
                .annotate(m=Max("rationale"))
                .values("m")
            ),
            Value(""),
            output_field=TextField(),
        ),
        settled=Exists(settled),
    )


def items_in_consensus(*, campaign: ReviewCampaign) -> QuerySet[ReviewItem]:
    """Finished items whose answers agree (``ReviewItem.agreed``, set when the item was
    done) and that no Decision settled yet."""
    return items_with_tallies(campaign=campaign).filter(agreed=True, settled=False)


def items_to_adjudicate(*, campaign: ReviewCampaign) -> QuerySet[ReviewItem]:
    """Finished items whose answers disagree, or agree on something that is not a label
    (all "unsure", all "partly relevant"), and that no Decision settled yet."""
    return items_with_tallies(campaign=campaign).filter(agreed=False, settled=False)


@dataclass
class HumanAnswer:
    rater: str
    verdict: str
    note: str
    edited_query: str
    # A revision after the reveal of a blind campaign: the blind answer's verdict ("" else).
    blind_verdict: str = ""


def adjudication_page(
    *, campaign: ReviewCampaign, after: int | None = None, before: int | None = None, size: int = 20
) -> KeysetPage:
    """One page of the adjudication queue, each item with its human answers and the machine
    verdicts (curators are never blind)."""
    page = keyset_paginate(
        items_to_adjudicate(campaign=campaign), key="id", after=after, before=before, size=size
    )
    ids = [item.pk for item in page.items]
    answers: dict[int, list[HumanAnswer]] = {i: [] for i in ids}
    rows = (
        ReviewSubmission.objects.filter(item_id__in=ids, undone_at__isnull=True)
        .order_by("item_id", "id")
        .values_list(
            "item_id", "judgment__rater", "judgment__verdict", "judgment__note",
            "judgment__tag", "judgment__rationale", "revises__judgment__verdict",
        )
    )  # fmt: skip
    for item_id, rater, verdict, note, tag, rationale, blind_verdict in rows:
        edited = rationale if tag == QUERY_EDIT_TAG else ""
        answers[item_id].append(HumanAnswer(rater, verdict, note, edited, blind_verdict or ""))
    views = review_item_views(
        items=page.items,
        machine_for={i.pk for i in page.items},
        cascade_run_id=campaign.cascade_run_id,
    )
    page.items = [(view, answers[view.item.pk]) for view in views]
    return page


def consensus_count(*, campaign: ReviewCampaign) -> int:
    return items_in_consensus(campaign=campaign).count()
