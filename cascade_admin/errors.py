"""Errors every app raises and the API maps (see cascade_admin.api)."""


class Conflict(Exception):
    """The request is valid but clashes with the current state (e.g. editing a frozen version).

    The API answers 409 with this text.
    """
