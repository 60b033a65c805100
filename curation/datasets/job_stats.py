"""What an import's and an export's stats say, in the order a curator reads them
(``core.job_pages.StatsLayout``): what was added first, then what was already there or
left out, then notes of the file's format. The snapshot page lists its counts the same way."""

from core.job_pages import StatsLayout

IMPORT_STATS = StatsLayout(
    shown=(
        ("files", "Files"),
        ("split", "Split"),
        ("queries_added", "Queries added"),
        ("positives_added", "Positives added"),
        ("negatives_added", "Negatives added"),
        ("passages_added", "Passages added"),
        ("queries_existing", "Queries already there"),
        ("passages_existing", "Passages already there"),
        ("candidate_rows", "Candidate rows read"),
        ("candidates_not_added", "Candidate rows already there or repeated"),
        ("positive_and_negative", "Pairs both positive and negative (kept as positive)"),
        ("queries_without_candidates", "Queries without candidates (left out)"),
        ("qrels_below_min_relevance", "Qrels below the minimum relevance"),
        ("empty_documents", "Empty documents (kept)"),
        ("first_empty_document", "First empty document"),
        ("prompt", "Query prompt"),
        ("records_with_another_prompt", "Records with another prompt"),
    ),
    # How the merge checked foreign keys: a detail of the SQL, not of the data. The format
    # the import read is in the page's head, by its name (curation/import_job.html).
    hidden=frozenset({"foreign_key_checks", "format"}),
)

# The policy's counts (curation/datasets/export/policy.py Counts), as the export job and
# the snapshot page show them.
EXPORT_COUNTS = (
    ("rows", "Rows written"),
    ("queries_in", "Queries in"),
    ("queries_out", "Queries out"),
    ("positives", "Positives"),
    ("negatives", "Negatives"),
    ("false_negatives_confirmed", "False negatives confirmed"),
    ("false_negatives_removed", "False negatives removed"),
    ("false_negatives_relabelled", "False negatives relabelled"),
    ("positives_removed", "Positives removed"),
    ("dropped_remove", "Queries dropped (remove)"),
    ("dropped_ambiguous", "Queries dropped (ambiguous)"),
    ("dropped_no_positive", "Queries dropped (no positive left)"),
    ("dropped_no_negative", "Queries dropped (no negative left)"),
)
# The snapshot's id and sha256 are on the snapshot page the job links to.
EXPORT_STATS = StatsLayout(shown=EXPORT_COUNTS, hidden=frozenset({"snapshot_id", "sha256"}))
SNAPSHOT_COUNTS = StatsLayout(shown=EXPORT_COUNTS)
