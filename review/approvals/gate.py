"""The approval gate, from a stored agreement report's figures. Pure: no Django.

A cascade's verdicts may stand in for people on a whole dataset only when people, on a
reviewed sample, agree with them. The gate reads one machine rater's row of the report (one
stage's judge, or the cascade's final verdict) against the human majority and checks two
figures against thresholds a curator may edit:

* Cohen's κ ≥ ``kappa_min`` (0.30 by default: the RLHN paper's GPT-4o-mini measured 0.320
  and GPT-4o 0.390 against three assessors, so 0.30 is "about as good as the published
  judges");
* the lower end of the 95 % Wilson interval of the false-negative flags' precision ≥
  ``precision_low_min`` (0.5 by default: with that confidence, most passages the judge would
  move or remove really are relevant — a flag is more often right than wrong).

An undefined figure (no flags, one category only, no report) fails its check: nothing
measured is nothing shown.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

DEFAULT_KAPPA_MIN = 0.30
DEFAULT_PRECISION_LOW_MIN = 0.5
# The agreement report's key for the cascade's final verdict (review/agreement/report.py).
FINAL_RATER = "cascade_final"


@dataclass(frozen=True)
class GateSettings:
    kappa_min: float = DEFAULT_KAPPA_MIN
    precision_low_min: float = DEFAULT_PRECISION_LOW_MIN


@dataclass(frozen=True)
class GateCheck:
    name: str
    label: str
    value: float | None
    threshold: float
    passed: bool


@dataclass(frozen=True)
class GateResult:
    passed: bool
    rater: str
    settings: GateSettings
    checks: tuple[GateCheck, ...]
    # The report's row for the rater (κ with CI, precision and recall with CIs, n, paper
    # reference), or None when the report has no such rater.
    figures: dict | None
    problem: str = ""

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "rater": self.rater,
            "settings": asdict(self.settings),
            "checks": [asdict(check) for check in self.checks],
            "figures": self.figures,
            "problem": self.problem,
        }


def rater_key(*, stage: int | None, stage_raters: dict[int, str]) -> str:
    """The report's key for what is approved: a stage's judge, or the final verdict."""
    return FINAL_RATER if stage is None else stage_raters[stage]


def _defined(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _check(name: str, label: str, value, threshold: float) -> GateCheck:
    value = _defined(value)
    return GateCheck(name, label, value, threshold, value is not None and value >= threshold)


def gate_evaluate(*, machines: list[dict] | None, rater: str, settings: GateSettings) -> GateResult:
    """Check ``rater``'s row among a report's ``machines`` rows against ``settings``.
    ``machines`` None: no report was chosen."""
    if machines is None:
        row, problem = None, "no agreement report chosen: nothing was measured"
    else:
        row = next((m for m in machines if m.get("rater") == rater), None)
        problem = "" if row else f"the report has no verdicts of {rater} to compare with people"
    checks = (
        _check("kappa", "Cohen's κ vs the human majority", (row or {}).get("kappa"),
               settings.kappa_min),
        _check(
            "precision_ci_low",
            "precision of the false-negative flags, lower end of the 95 % CI",
            (row or {}).get("precision_ci_low"),
            settings.precision_low_min,
        ),
    )  # fmt: skip
    if row is not None and row.get("n", 0) == 0:
        problem = "no item was judged by both the humans and this judge"
    return GateResult(
        passed=row is not None and all(check.passed for check in checks),
        rater=rater,
        settings=settings,
        checks=checks,
        figures=row,
        problem=problem,
    )
