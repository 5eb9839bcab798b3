from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET

from accounts.decorators import role_required
from accounts.roles import OPERATOR

from .selectors import audit_events


@require_GET
@role_required(OPERATOR)
def log(request):
    """The whole audit log, newest first, narrowed by who, what, which object and when."""
    filters = {k: request.GET.get(k, "").strip() for k in ("actor", "action", "obj")}
    dates = {k: parse_date(request.GET.get(k, "") or "") for k in ("since", "until")}
    events = audit_events(
        actor=filters["actor"],
        action=filters["action"],
        obj=filters["obj"],
        since=dates["since"],
        until=dates["until"],
    )
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/log.html",
        {"page": page, "filters": {**filters, **request.GET.dict()}, "query": query.urlencode()},
    )
