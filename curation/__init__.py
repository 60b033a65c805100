"""Curation: training data in, judged and frozen. One package per sub-domain:

* ``datasets/``: corpora, import, export, snapshots and their pages.
* ``mining/``: hard negatives mined with an embedding model, the stage-0 teacher judge.
* ``cascade/``: the cascade of LLM judges (create, run online or by Batch API, ledger).
* ``synthesis/``: synthetic triplets written by an LLM and filtered by the teacher.

Shared below them: ``models.py`` (the app's one models module), ``llm/`` (OpenAI-compatible
endpoints: settings, engine, Batch API client, tokens), ``embeddings.py`` (corpus embeddings
cache), ``bulk.py`` (bulk SQL writers), ``tasks.py`` (the Celery tasks, named
``curation.tasks.*``), ``urls.py`` (includes each package's urls), ``demo.py``.
"""
