"""Audit values as people read them: indented JSON, not Python reprs."""

import json

from django import template

register = template.Library()


@register.filter
def as_json(value) -> str:
    if value in (None, ""):
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
