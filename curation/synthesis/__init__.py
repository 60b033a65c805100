"""Synthetic triplets: an LLM writes a query for a sampled passage and a hard negative for
it (or the teacher mines one); the teacher filters what it does not trust.

* ``core.py``: prompts, answer parsing and the teacher's verdict (pure: no Django).
* ``services.py``: ``synthesis_run_create`` / ``synthesis_run_execute`` (the job) and the
  chunk loop with its budget; ``generator.py``: the LLM calls through the ledger;
  ``triplets.py``: one chunk generated, scored, filtered and written.
* ``selectors.py``, ``views.py``, ``forms.py``, ``urls.py``: the launch form and the run page.

Design: ``synthesis.md``.
"""
