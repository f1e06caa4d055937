"""Domain errors raised by the service layer; the API maps `http_status`, the CLI exits 2."""


class ConfigError(ValueError):
    """Invalid input; `errors` maps a field path to a list of messages."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__(self.one_line())

    def one_line(self):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in self.errors.items())


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


class BrokerUnavailable(ServiceError):
    """The broker refused a run's task: the transaction that would have recorded the run is
    rolled back, so nothing was started and nothing says otherwise."""

    http_status = 503


class DoesNotFit(Conflict):
    """Admission control refused a channel: `details["shortfall"]` says what each host lacks."""
