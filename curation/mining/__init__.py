"""Mining hard negatives with an embedding model, and the stage-0 teacher judge.

* ``core.py``: search and negative selection (pure: numpy and faiss, no Django).
* ``services.py``: ``mining_run_create`` / ``mining_run_execute`` (the job) and
  ``dataset_negatives_mine``; ``selectors.py``: its reads and the run pages' reads.
* ``views.py``, ``forms.py``, ``urls.py``: the launch form and the run page.

Design: ``mining.md`` (the run, the teacher judge, resume, the corpus embedding cache).
"""
