"""Domain errors raised by the service layer; the API maps `http_status`, the CLI exits 2."""


class ServiceError(Exception):
    http_status = 400


class NotFound(ServiceError):
    http_status = 404


class Conflict(ServiceError):
    http_status = 409


class NoCapacity(ServiceError):
    http_status = 503
