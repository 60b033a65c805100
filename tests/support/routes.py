"""Which of the project's URL routes the test run requested (issue: endpoints no test
requested would let a regression through).

Every request a test makes, through Django's test client, DRF's APIClient or the live server
the browser tests drive, sends ``request_started``; its path is resolved to the route's name
and recorded. At the end of a run of the whole suite, a route that no test requested fails
the run (tests/conftest.py, ``pytest_sessionfinish``). Django's admin and the static files
are Django's own and are left out.
"""

from django.core.signals import request_started
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

IGNORED_NAMESPACES = ("admin",)

requested: set[str] = set()


def _record(sender, environ=None, **kwargs) -> None:
    try:
        match = resolve((environ or {}).get("PATH_INFO", ""))
    except Resolver404:
        return
    requested.add(match.view_name)


def start_recording() -> None:
    request_started.connect(_record, dispatch_uid="tests.support.routes")


def all_routes() -> dict[str, str]:
    """Every named route of the project: view name -> its pattern."""
    routes: dict[str, str] = {}

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = pattern.namespace or None
                if inner in IGNORED_NAMESPACES:
                    continue
                joined = f"{namespace}:{inner}" if namespace and inner else inner or namespace
                walk(pattern.url_patterns, prefix + str(pattern.pattern), joined)
            elif isinstance(pattern, URLPattern) and pattern.name:
                name = f"{namespace}:{pattern.name}" if namespace else pattern.name
                routes[name] = prefix + str(pattern.pattern)

    walk(get_resolver().url_patterns, "", None)
    return routes


def unrequested() -> dict[str, str]:
    return {name: path for name, path in all_routes().items() if name not in requested}
