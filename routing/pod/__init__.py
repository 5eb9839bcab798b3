"""The classifier pod: an OpenAI-compatible streaming router in front of two backends.

Run it with ``python -m routing.pod`` (see README.md). It imports ``routing.engine`` and
never Django, so the image stays small and starts fast.
"""
