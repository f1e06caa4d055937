"""Encode host names become queue names (encode.<name>): keep them to a safe alphabet."""
import re

HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def validate_host_name(name):
    if not HOST_NAME.match(name or ""):
        raise ValueError(f"'{name}' is not a host name (letters, digits, . _ -; at most 63)")
    return name
