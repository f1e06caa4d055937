"""Domain errors raised by the service layer; the API maps `http_status`, the CLI exits 2."""


class ServiceError(Exception):
    http_status = 400

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details  # extra keys for the API answer, e.g. a placement shortfall


class NotFound(ServiceError):
    http_status = 404


class Conflict(ServiceError):
    http_status = 409


class NoCapacity(ServiceError):
    http_status = 503


class DoesNotFit(Conflict):
    """Admission control refused a channel: `details["shortfall"]` says what each host lacks."""
