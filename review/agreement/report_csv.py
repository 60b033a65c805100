"""The stored agreement report as CSV rows (the download of the report page). Pure: no
Django, no I/O. The rows hold plain values; ``core.csv_export.csv_write`` formats them and
neutralises cells a spreadsheet would run as formulas, as for every CSV the project serves."""

from __future__ import annotations

from collections.abc import Iterator

from .report import MAJORITY_KEY, SCHEME_FLAG

CSV_HEADER = (
    "section",
    "dimension",
    "slice",
    "rater_a",
    "rater_b",
    "scheme",
    "n",
    "percent_agreement",
    "kappa",
    "ci_low",
    "ci_high",
    "fleiss_kappa",
    "fleiss_items",
    "fleiss_kappa_generalized",
    "krippendorff_alpha",
    "krippendorff_alpha_ordinal",
    "weighted_kappa_linear",
    "weighted_kappa_quadratic",
    "precision",
    "recall",
    "f1",
    "true_positive",
    "false_positive",
    "false_negative",
    "paper_kappa",
    # Wilson score intervals of the machine rows' precision and recall (empty in reports
    # computed before they existed).
    "precision_ci_low",
    "precision_ci_high",
    "recall_ci_low",
    "recall_ci_high",
    # Section post_reveal_revisions, one row per annotator (blind campaigns).
    "blind_answers",
    "revised",
    "changed",
    "toward_llm",
    "away_from_llm",
)


GROUP_STATISTICS = (
    "fleiss_kappa",
    "fleiss_items",
    "fleiss_kappa_generalized",
    "krippendorff_alpha",
    "krippendorff_alpha_ordinal",
)


def csv_rows(result: dict) -> Iterator[list[str]]:
    """The stored report (``AgreementReportData.to_json()``) as CSV rows, header first."""
    yield list(CSV_HEADER)

    def row(**values) -> list[str]:
        return [values.get(column) for column in CSV_HEADER]

    for group in result.get("humans", []):
        yield row(
            section="humans",
            scheme=group["scheme"],
            n=group["items"],
            **{key: group.get(key) for key in GROUP_STATISTICS},
        )
    for section in ("human_pairs", "flag_pairs"):
        for pair in result.get(section, []):
            yield row(section=section, **pair)
    for machine in result.get("machines", []):
        yield row(section="machine_vs_majority", rater_a=machine["rater"], rater_b=MAJORITY_KEY,
                  scheme=SCHEME_FLAG, **machine)  # fmt: skip
    for dimension, slice_rows in result.get("slices", {}).items():
        for slice_row in slice_rows:
            humans = slice_row["humans"]
            yield row(
                section="slice_humans",
                dimension=dimension,
                slice=slice_row["value"],
                scheme=humans["scheme"],
                n=humans["items"],
                **{key: humans.get(key) for key in GROUP_STATISTICS},
            )
            for machine in slice_row["machines"]:
                yield row(section="slice_machine_vs_majority", dimension=dimension,
                          slice=slice_row["value"], rater_a=machine["rater"],
                          rater_b=MAJORITY_KEY, scheme=SCHEME_FLAG, **machine)  # fmt: skip
    # Only where the scope has blind answers (as on the page): open campaigns have none.
    revisions = result.get("revisions", [])
    if any(r["blind_answers"] or r["revised"] for r in revisions):
        for revision in revisions:
            yield row(section="post_reveal_revisions", rater_a=revision["rater"], **revision)
