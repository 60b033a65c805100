"""Capture the Celery tasks a service sends instead of sending them. ``job_enqueue`` stores
a task id on the job row, then calls ``task.apply_async((pk,), task_id=that id)``."""

from types import SimpleNamespace


class Sends(list):
    """The job primary keys sent (or ``(task name, pk)`` pairs), in order; ``ids`` holds the
    task id each send carried."""

    def __init__(self):
        super().__init__()
        self.ids: list[str] = []


def capture_sends(monkeypatch, *tasks, named: bool = False) -> Sends:
    sends = Sends()
    for task in tasks:

        def apply_async(args=None, kwargs=None, *, task_id=None, name=task.name, **options):
            pk = (args or [None])[0]
            sends.append((name, pk) if named else pk)
            sends.ids.append(task_id)
            return SimpleNamespace(id=task_id)

        monkeypatch.setattr(task, "apply_async", apply_async)
    return sends
