from django import forms

from routing.models import ClassifierVersion, VersionStatus

from .models import Route, Slot

UNITS = [("1", "seconds"), ("60", "minutes"), ("3600", "hours")]


def _frozen():
    return ClassifierVersion.objects.filter(status=VersionStatus.FROZEN).order_by("-frozen_at")


class PublishForm(forms.Form):
    version = forms.ModelChoiceField(queryset=_frozen(), to_field_name="name")
    slot = forms.ModelChoiceField(queryset=Slot.objects.order_by("name"), to_field_name="name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        version = self.fields["version"]
        assert isinstance(version, forms.ModelChoiceField)  # declared so above
        version.queryset = _frozen()


class StartForm(forms.Form):
    route = forms.ModelChoiceField(queryset=Route.objects.order_by("name"), to_field_name="name")
    version = forms.ModelChoiceField(queryset=_frozen(), to_field_name="name")
    steps = forms.CharField(initial="10,50,100", help_text="Canary % per stage, ending at 100.")
    window = forms.IntegerField(min_value=1, initial=48)
    unit = forms.ChoiceField(choices=UNITS, initial="3600")
    reason = forms.CharField(required=False, max_length=500)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        version = self.fields["version"]
        assert isinstance(version, forms.ModelChoiceField)  # declared so above
        version.queryset = _frozen()

    def clean_steps(self):
        try:
            return [int(part) for part in self.cleaned_data["steps"].split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("Use whole numbers separated by commas.") from None

    @property
    def window_seconds(self) -> int:
        return self.cleaned_data["window"] * int(self.cleaned_data["unit"])


class ActionForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)
    expected_stage = forms.IntegerField(required=False, min_value=0)
    republish = forms.BooleanField(required=False)


class MisrouteCheckForm(forms.Form):
    threshold_percent = forms.FloatField(min_value=0.1, max_value=99.9)
    min_labels = forms.IntegerField(min_value=1)


class GateForm(forms.Form):
    name = forms.SlugField(max_length=50)
    threshold = forms.FloatField()
    window = forms.CharField(max_length=10)
    min_requests = forms.IntegerField(min_value=0)
    rollback_after_seconds = forms.IntegerField(min_value=0, required=False)
