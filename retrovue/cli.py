"""The `retrovue` console script: the same commands as `python manage.py ...`.

`retrovue channel list` runs the `channel` management command, `retrovue worker --host a`
the `worker` command, and so on, so the CLI and manage.py can never drift apart.
"""
import os
import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrovue.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["retrovue", *argv])


if __name__ == "__main__":
    main()
