from cascade_admin.errors import Conflict


class VersionNotEditable(Conflict):
    """A change to a version that is no longer a draft."""
