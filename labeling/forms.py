from datetime import timedelta

from django import forms
from django.utils import timezone

from .models import BatchKind, LabelValue

REASON_TAGS = [
    ("multi-file", "Multi-file / codebase context"),
    ("algorithm", "Algorithm or math reasoning"),
    ("debugging", "Complex debugging"),
    ("security", "Security analysis"),
    ("simple-query", "Simple question"),
    ("single-function", "Single function"),
    ("formatting", "Formatting / grammar"),
    ("explanation", "Short explanation"),
]
REASON_KEYS = "34567890"  # the item page's keys for the reasons, in order


class BatchForm(forms.Form):
    kind = forms.ChoiceField(choices=BatchKind.choices, initial=BatchKind.HEADLINE)
    size = forms.IntegerField(
        min_value=1,
        max_value=5000,
        initial=100,
        help_text="Headline: requests drawn; those sharing an input are labeled once, weighted.",
    )
    period_start = forms.DateTimeField(
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="From (UTC)"
    )
    period_end = forms.DateTimeField(
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="Until (UTC)"
    )
    classifier_version = forms.CharField(required=False, max_length=64, label="Only version")
    stratify_by_tier = forms.BooleanField(required=False, label="Stratify by tier (headline)")
    double_review_share = forms.FloatField(
        min_value=0, max_value=1, initial=0.1, label="Share labeled twice"
    )
    min_cost_usd = forms.FloatField(
        required=False, min_value=0, label="FP: cost above (USD)", help_text="Default 0.01."
    )
    max_chars = forms.IntegerField(
        required=False, min_value=1, label="FP: shorter than (chars)", help_text="Default 200."
    )
    char_margin = forms.IntegerField(
        required=False, min_value=1, label="Near: ± characters", help_text="Default 50."
    )
    seed = forms.IntegerField(required=False, help_text="Empty: a random seed, recorded.")
    name = forms.CharField(required=False, max_length=120)

    @classmethod
    def for_last_week(cls):
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        return cls(initial={"period_start": now - timedelta(days=7), "period_end": now})


class LabelForm(forms.Form):
    value = forms.ChoiceField(choices=LabelValue.choices)
    comment = forms.CharField(required=False, max_length=5000)
    reasons = forms.MultipleChoiceField(choices=REASON_TAGS, required=False)
