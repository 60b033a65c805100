"""The agreement figures computed the slow, obvious way: plain ORM loops over the rows and
the reference libraries (scikit-learn, statsmodels, krippendorff). Tests compare the report
with these."""

from collections import Counter, defaultdict

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from curation.models import Judgment, RaterKind
from review.models import ReviewItem, ReviewSubmission

VERDICTS = ["relevant", "not_relevant", "partly_relevant", "unsure"]


class Reference:
    def __init__(self, *, campaigns, partly_is_fn: bool = False):
        items = ReviewItem.objects.filter(campaign__in=campaigns).order_by("id")
        self.first_item = {}
        for item in items:
            self.first_item.setdefault(item.candidate_id, item)
        self.candidates = sorted(self.first_item)
        latest: dict[tuple[str, int], Judgment] = {}
        for submission in ReviewSubmission.objects.filter(
            item__campaign__in=campaigns, undone_at__isnull=True
        ).select_related("judgment", "user", "item"):
            key = (f"user:{submission.user.username}", submission.item.candidate_id)
            if key not in latest or submission.judgment_id > latest[key].pk:
                latest[key] = submission.judgment
        self.human = {key: j.verdict for key, j in latest.items()}
        self.human_time = {key: j.created_at for key, j in latest.items()}
        self.humans = sorted({rater for rater, _ in self.human})
        machine: dict[tuple[str, int], Judgment] = {}
        for judgment in Judgment.objects.filter(
            rater_kind=RaterKind.MACHINE, candidate_id__in=self.candidates
        ):
            if not judgment.rater.startswith(("llm:", "teacher:")):
                continue
            key = (judgment.rater, judgment.candidate_id)
            if key not in machine or judgment.pk > machine[key].pk:
                machine[key] = judgment
        self.machine = {key: j.verdict for key, j in machine.items()}
        self.machines = sorted({rater for rater, _ in self.machine})
        self.partly_is_fn = partly_is_fn

    # -- verdicts and flags

    def flag(self, verdict):
        if verdict is None or verdict == "unsure":
            return None
        if verdict == "partly_relevant":
            return int(self.partly_is_fn)
        return int(verdict == "relevant")

    def majority(self, candidate, subset=None) -> int | None:
        flags = [self.flag(self.human.get((h, candidate))) for h in self.humans]
        votes = Counter(f for f in flags if f is not None)
        if not votes:
            return None
        (top, count), *rest = votes.most_common()
        if rest and rest[0][1] == count:
            return None
        return top

    def cascade_final(self, candidate):
        stage2 = [r for r in self.machines if r.endswith(":stage2")]
        stage1 = [r for r in self.machines if r.endswith(":stage1")]
        for raters in (stage2, stage1):
            for rater in raters:
                if (rater, candidate) in self.machine:
                    return self.machine[(rater, candidate)]
        return None

    # -- statistics

    def human_pair(self, a, b):
        both = [c for c in self.candidates if (a, c) in self.human and (b, c) in self.human]
        x = [self.human[(a, c)] for c in both]
        y = [self.human[(b, c)] for c in both]
        return (
            len(both),
            float(np.mean([p == q for p, q in zip(x, y, strict=True)])),
            (cohen_kappa_score(x, y)),
        )

    def machine_vs_majority(self, rater, candidates=None):
        pred, ref = [], []
        for c in candidates if candidates is not None else self.candidates:
            verdict = (
                self.cascade_final(c) if rater == "cascade_final" else self.machine.get((rater, c))
            )
            m, h = self.flag(verdict), self.majority(c)
            if m is not None and h is not None:
                pred.append(m)
                ref.append(h)
        return {
            "n": len(pred),
            "kappa": cohen_kappa_score(pred, ref),
            "precision": precision_score(ref, pred, zero_division=np.nan),
            "recall": recall_score(ref, pred, zero_division=np.nan),
            "f1": f1_score(ref, pred, zero_division=np.nan),
            "agreement": float(np.mean(np.array(pred) == np.array(ref))),
        }

    def krippendorff(self, candidates=None):
        candidates = candidates if candidates is not None else self.candidates
        data = [
            [
                VERDICTS.index(self.human[(h, c)]) if (h, c) in self.human else np.nan
                for c in candidates
            ]
            for h in self.humans
        ]
        return krippendorff.alpha(reliability_data=np.array(data, dtype=float),
                                  level_of_measurement="nominal")  # fmt: skip

    def fleiss(self, candidates=None):
        """statsmodels needs the same number of raters on every item: only items all the
        humans judged are passed (the caller picks a scope where that is every item)."""
        candidates = candidates if candidates is not None else self.candidates
        rows = [
            [VERDICTS.index(self.human[(h, c)]) for h in self.humans]
            for c in candidates
            if all((h, c) in self.human for h in self.humans)
        ]
        table, _ = aggregate_raters(np.array(rows), n_cat=4)
        return len(rows), sm_fleiss_kappa(table, method="fleiss")

    def strata(self):
        groups = defaultdict(list)
        for c in self.candidates:
            groups[self.first_item[c].get_stratum_display()].append(c)
        return groups
