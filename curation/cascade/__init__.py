"""The cascade of LLM judges over a dataset's hard negatives (RLHN): a cheap judge reads
every query, a strong one re-judges what it flagged; every verdict is a machine judgment.

* ``create.py``: settings, validation, the dry-run estimate and ``cascade_run_create``.
* ``execute.py``: ``cascade_run_execute`` (the job) and its ``Executor``; ``online.py``: the
  window loop of one stage; ``batch.py``: the Batch API path; ``work.py``: the units moved.
* ``ledger.py``: answers stored in the ``LLMCall`` ledger with their cost; ``writes.py``:
  judgments and item rows in bulk.
* ``prompts.py``, ``verdict.py``: the judge's prompt and its answer parser (pure: no Django).
* ``selectors.py``, ``views.py``, ``forms.py``, ``urls.py``: reads, the launch form with its
  estimate, the run page.

The endpoint side (stage settings and prices, call engine, Batch API client, token counts)
is ``curation/llm/``, shared with synthesis. Design: ``cascade.md``.
"""
