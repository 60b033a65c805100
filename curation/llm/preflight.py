"""Before a cascade or synthesis run is launched: can the workers that will run it reach
each stage's endpoint, with the key, and does the endpoint know the model? Run on a worker
of the ``llm`` queue (``curation.tasks.llm_preflight``), because that is where the key and
the network that matter are: the web process may have neither.

Per stage, one tiny request (one user message, ``max_tokens`` 1, no retries): a few tokens
billed at most. The answer says plainly what is wrong: the key variable unset on the worker,
the key refused, the endpoint unreachable, the model unknown."""

from __future__ import annotations

import os
import time

from .stages import StageSettings

TIMEOUT_S = 10.0  # per stage, on the worker
# How long the web request waits for a worker of the llm queue to answer.
WAIT_S = 25.0


def _ok(stage: StageSettings, started: float, note: str = "") -> dict:
    return {
        "stage": stage.number,
        "model": stage.model,
        "base_url": stage.base_url,
        "ok": True,
        "problem": "",
        "note": note,
        "latency_ms": round((time.monotonic() - started) * 1000),
    }


def _problem(stage: StageSettings, problem: str) -> dict:
    return {
        "stage": stage.number,
        "model": stage.model,
        "base_url": stage.base_url,
        "ok": False,
        "problem": problem,
        "note": "",
        "latency_ms": None,
    }


def stage_preflight(stage: StageSettings) -> dict:
    """Check one stage from this process (a worker's environment and network)."""
    import openai

    key = os.environ.get(stage.api_key_env, "")
    is_openai = "api.openai.com" in stage.base_url
    if not key and is_openai:
        return _problem(
            stage,
            f"{stage.api_key_env} is not set on the llm worker that answered: set it in the "
            "workers' environment (the web server's does not count) and restart them",
        )
    client = openai.OpenAI(
        base_url=stage.base_url, api_key=key or "no-key", timeout=TIMEOUT_S, max_retries=0
    )
    started = time.monotonic()
    try:
        client.chat.completions.create(
            model=stage.model,
            messages=[{"role": "user", "content": "Reply with OK."}],
            max_tokens=1,
        )
    except openai.AuthenticationError as error:
        hint = "" if key else f" ({stage.api_key_env} is not set on the worker)"
        return _problem(stage, f"the endpoint refused the key{hint}: {error.message}")
    except openai.NotFoundError as error:
        return _problem(
            stage, f"the endpoint does not know model {stage.model!r} (404): {error.message}"
        )
    except openai.RateLimitError:
        return _ok(stage, started, "reachable, key accepted, but rate-limited right now (429)")
    except openai.APIStatusError as error:
        return _problem(stage, f"the endpoint answered HTTP {error.status_code}: {error.message}")
    except openai.APIConnectionError as error:
        return _problem(stage, f"cannot reach {stage.base_url} from the worker: {error}")
    note = "" if key else f"{stage.api_key_env} is not set; this endpoint did not ask for a key"
    return _ok(stage, started, note)


def stages_preflight(stages: list[StageSettings]) -> list[dict]:
    return [stage_preflight(stage) for stage in stages]


def stages_preflight_on_workers(stages: list[StageSettings], *, wait_s: float = WAIT_S) -> dict:
    """Ask a worker of the ``llm`` queue to check ``stages`` and wait for its answer. Returns
    ``{"answered": bool, "stages": [...], "problem": str}``: no worker answering in time is
    itself the first thing to fix. The task is sent by name (services never import tasks)."""
    from celery import current_app
    from celery.exceptions import TimeoutError as CeleryTimeout

    result = current_app.send_task(
        "curation.tasks.llm_preflight", args=[[stage.as_dict() for stage in stages]]
    )
    try:
        checks = result.get(timeout=wait_s, disable_sync_subtasks=False)
    except CeleryTimeout:
        result.revoke()
        return {
            "answered": False,
            "stages": [],
            "problem": f"no worker of the llm queue answered within {wait_s:.0f} s: is one "
            "running? (`make run` starts one; elsewhere: celery -A config worker -Q llm)",
        }
    finally:
        result.forget()
    return {"answered": True, "stages": checks, "problem": ""}
