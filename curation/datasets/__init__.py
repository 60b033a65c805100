"""Datasets: corpora and their query sets in, frozen snapshots out.

* ``formats/``: one reader per import format (BGE, Tevatron, BEIR, sentence-transformers).
* ``uploads.py``: an uploaded file, kept for its import job.
* ``imports.py``: ``dataset_import`` and the import job; ``import_staging.py``: the staging
  tables and the set-based merge behind it. Design: ``imports.md``.
* ``export/``: snapshot policies and writers (pure); ``snapshots.py``: ``snapshot_create`` and
  the export job. Design: ``snapshots.md``.
* ``corpus.py``: reads over a corpus's passages (for embeddings, mining and synthesis);
  ``selectors.py``: reads for the dataset, query, import and snapshot pages.
* ``views.py``, ``forms.py``, ``urls.py``: the pages; ``api.py``: /api/datasets/, imports/,
  snapshots/, exports/.
"""
