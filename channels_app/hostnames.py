"""Encode host names become queue names (encode.<name>): keep them to a safe alphabet."""
import re

HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def validate_host_name(name):
    if not isinstance(name, str) or not HOST_NAME.match(name):
        raise ValueError(f"'{name}' is not a host name (letters, digits, . _ -; at most 63)")
    return name


def validate_host_label(label):
    """Labels say what a host offers (nvenc, qsv, dc-east); placement matches them exactly."""
    if not isinstance(label, str) or not HOST_NAME.match(label):
        raise ValueError(f"'{label}' is not a host label (letters, digits, . _ -; at most 63)")
    return label
