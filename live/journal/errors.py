"""The one exception the journal raises for anything a caller can act on."""


class JournalError(RuntimeError):
    """A journal refusal: a run recorded with another plan, a schema from newer code, a bad amount."""
