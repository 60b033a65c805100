"""Review: humans judge a sample, and their agreement with each other and with the machines
is measured.

The campaign work (campaigns, the review queue, adjudication, consensus decisions) is one
flow over the same three models, and stays at the top of the app: ``services/`` (campaigns,
queue, decisions), ``selectors.py``, ``views.py``, ``forms.py``, ``urls.py``, ``api.py``,
``highlight.py``; design note ``review_queue.md``. ``agreement/`` is the agreement report
(statistics, the job, its pages and API); design note ``agreement/agreement.md``.
"""
