"""Settings of the web server that ``bench/review_http_bench.py`` starts: production's, plus
one measuring middleware that only this bench turns on.

The middleware sits first, so it sees the whole request as Django handles it (every other
middleware, the view, the template) and answers with two headers: ``X-Bench-Sql``, the SQL
statements the request executed (session, user, permission checks, the submit, the pane;
COMMITs are not statements and are not counted), and ``X-Bench-Ms``, the time spent inside
Django. A production process never loads this module.
"""

import time

from django.db import connections

from config.settings.production import *  # noqa: F403
from config.settings.production import MIDDLEWARE

MIDDLEWARE = ["review_http_settings.SqlCountMiddleware", *MIDDLEWARE]
# The bench's clients speak plain HTTP to 127.0.0.1 with X-Forwarded-Proto: https, as the TLS
# proxy of docs/deployment.md would.
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]


class SqlCountMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        count = [0]

        def counting(execute, sql, params, many, context):
            count[0] += 1
            return execute(sql, params, many, context)

        started = time.perf_counter()
        with connections["default"].execute_wrapper(counting):
            response = self.get_response(request)
        response["X-Bench-Ms"] = f"{(time.perf_counter() - started) * 1000:.2f}"
        response["X-Bench-Sql"] = str(count[0])
        return response
