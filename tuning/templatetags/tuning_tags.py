"""Formatting of rates, intervals and money for the tuning pages."""

from django import template

register = template.Library()


@register.filter
def pct(value, digits=1):
    """0.042 -> "4.2%"; a rate dict gives its value; None -> "–"."""
    if isinstance(value, dict):
        value = value.get("value")
    if value is None or value == "":
        return "–"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def interval(rate):
    """A rate dict -> "[2.0%, 7.7%]" ("" without one)."""
    if not isinstance(rate, dict) or rate.get("low") is None or rate.get("high") is None:
        return ""
    return f"[{rate['low'] * 100:.1f}%, {rate['high'] * 100:.1f}%]"


@register.filter
def money(value, digits=2):
    if value is None or value == "":
        return "–"
    return f"${float(value):,.{int(digits)}f}"


@register.filter
def num(value, digits=2):
    if value is None or value == "":
        return "–"
    return f"{float(value):,.{int(digits)}f}"


@register.filter
def get(mapping, key):
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def figure(verdict):
    """A verdict's value as its metric reads (percent, dollars, seconds or score)."""
    if verdict.value is None:
        return "–"
    if verdict.is_rate:
        return pct(verdict.value)
    if verdict.metric == "cost_per_1k":
        return money(verdict.value)
    if verdict.metric.startswith("ttft"):
        return f"{verdict.value:.2f} s"
    return f"{verdict.value:.2f}"


@register.filter
def verdict_interval(verdict):
    if verdict.low is None or verdict.high is None:
        return ""
    if verdict.is_rate:
        return f"[{verdict.low * 100:.1f}%, {verdict.high * 100:.1f}%]"
    return f"[{verdict.low:.2f}, {verdict.high:.2f}]"
