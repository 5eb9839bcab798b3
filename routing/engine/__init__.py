"""Pure-Python routing engine shared by the console and the classifier pod.

No Django here: the pod image must stay small and start fast.
"""

from .classifier import STRONG, WEAK, Classifier, Decision, Span, build_classifier
from .config import (
    SCHEMA,
    SCHEMA_SCORER,
    SCHEMAS,
    ConfigError,
    canonical_config,
    normalize_keyword,
    validate_config,
    verify_canonical,
)
from .text import MessagesError, conversation_text, message_text

__all__ = [
    "SCHEMA",
    "SCHEMAS",
    "SCHEMA_SCORER",
    "STRONG",
    "WEAK",
    "Classifier",
    "ConfigError",
    "Decision",
    "MessagesError",
    "Span",
    "build_classifier",
    "canonical_config",
    "conversation_text",
    "message_text",
    "normalize_keyword",
    "validate_config",
    "verify_canonical",
]
