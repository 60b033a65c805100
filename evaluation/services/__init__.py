"""Evaluation runs: one model (a base model or a training run's artifact) on a list of mteb
retrieval tasks, in full or streamlined mode, on the ``gpu`` queue. Flow, cache and resume:
``evaluation/evaluation.md``.

    evaluation_run_create ─► (commit) ─► evaluation.tasks.evaluation_run ─► evaluation_run_execute
        load the model once ─► per task not yet stored: build task ─► mteb.evaluate through
        EvalEncoder (corpus vectors cached) ─► ONE transaction: EvalResult + delta vs full
        ─► stats on the row ─► progress / cancel

    task_specs.py   the tasks on offer (local BEIR folders, mteb's registry), resolving a
                    spec to its split, building the mteb task
    runs.py         checking a plan, resolving the model, creating a run
    execution.py    the worker side: load the model, evaluate task by task, store results
    deltas.py       streamlined vs full: ``delta_vs_full`` on streamlined results
"""
