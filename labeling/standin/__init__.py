"""A local Langfuse stand-in: the public API paths the v5 SDK calls, over real HTTP.

For tests and the embedded demo::

    store = Store()
    store.load(generate_traffic(seed=1, days=7))
    url, stop = start_in_thread(store)
    ...
    stop()
"""

from .server import DEFAULT_PUBLIC_KEY, DEFAULT_SECRET_KEY, start_in_thread
from .store import Fault, Store
from .traffic import (
    FEEDBACK_SCORE_NAME,
    THUMBS_SCORE_NAME,
    V7_CONFIG,
    Traffic,
    generate_traffic,
)

__all__ = [
    "DEFAULT_PUBLIC_KEY",
    "DEFAULT_SECRET_KEY",
    "FEEDBACK_SCORE_NAME",
    "THUMBS_SCORE_NAME",
    "V7_CONFIG",
    "Fault",
    "Store",
    "Traffic",
    "generate_traffic",
    "start_in_thread",
]
