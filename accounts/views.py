from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cascade_admin.errors import Conflict

from . import tokens
from .decorators import role_required
from .roles import REVIEWER


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. nightly-eval.")
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=settings.API_TOKEN_MAX_DAYS, initial=settings.API_TOKEN_TTL_DAYS
    )


@role_required(REVIEWER)
def token_list(request):
    """Your API tokens (an admin: everyone's). A new token's secret is shown on this one
    answer only, never kept in a message or the session."""
    form = TokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _, secret = tokens.token_create(
                actor=request.user,
                user=request.user,
                name=form.cleaned_data["name"],
                days=form.cleaned_data["expires_in_days"],
            )
            form = TokenForm()
        except Conflict as e:
            form.add_error(None, str(e))
    context = {
        "form": form,
        "secret": secret,
        "tokens": tokens.tokens_visible_to(request.user),
    }
    return render(request, "accounts/tokens.html", context, status=400 if form.errors else 200)


@require_POST
@role_required(REVIEWER)
def token_revoke(request, pk):
    token = get_object_or_404(tokens.tokens_visible_to(request.user), pk=pk)
    tokens.token_revoke(actor=request.user, token=token)
    messages.success(request, f"Token {token.name} ({token.token_key}…) revoked.")
    return redirect("accounts:tokens")
