"""Agreement: how far raters agree (humans with each other; each LLM stage and the teacher
with the human majority), computed as a job and shown as a report. Design: agreement.md.

* ``stats.py``, ``report.py``, ``report_csv.py``, ``plots.py``: pure numpy, no Django, no I/O.
* ``selectors.py``: a scope's ratings read as arrays, staleness, report lists.
* ``services.py``: ``agreement_report_create`` / ``agreement_report_run`` (the job).
* ``views.py``, ``forms.py``, ``urls.py``: the pages; ``api.py``: /api/agreement/.
"""
