class ApplicationError(Exception):
    """An error a user can act on: the message says what went wrong and where.

    ``detail`` carries machine-readable context (file, line, field, ...) for the API and
    the job row.
    """

    def __init__(self, message: str, *, detail: dict | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or {}

    def __str__(self) -> str:
        return self.message
