from django import forms

from .engine.config import MAX_BYTE_THRESHOLD, MAX_TOKEN_THRESHOLD, MAX_TURN_THRESHOLD
from .models import ClassifierVersion, Language


class ThresholdsForm(forms.Form):
    token_threshold = forms.IntegerField(
        min_value=1, max_value=MAX_TOKEN_THRESHOLD, label="Length threshold (characters)"
    )
    turn_threshold = forms.IntegerField(
        min_value=1, max_value=MAX_TURN_THRESHOLD, label="Turn threshold (messages)"
    )
    byte_threshold = forms.IntegerField(
        min_value=1,
        max_value=MAX_BYTE_THRESHOLD,
        required=False,
        label="Byte threshold (UTF-8 bytes, optional)",
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class KeywordForm(forms.Form):
    text = forms.CharField(max_length=100, strip=False, label="Keyword")
    language = forms.ChoiceField(choices=[("", "auto")] + list(Language.choices), required=False)
    rationale = forms.CharField(required=False, max_length=2000)


class CopyForm(forms.Form):
    name = forms.CharField(max_length=64, label="New draft name")


class PlaygroundForm(forms.Form):
    conversation = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false"}),
        help_text="JSON messages, or plain text turns starting with user: / assistant: / system:",
    )
    versions = forms.ModelMultipleChoiceField(
        queryset=ClassifierVersion.objects.order_by("-created_at"),
        to_field_name="name",
        widget=forms.CheckboxSelectMultiple,
    )
