from django.urls import path

from . import views

app_name = "tuning"

urlpatterns = [
    path("", views.board, name="board"),
    path("reports/", views.report_create, name="report-create"),
    path("reports/<int:report_id>/recompute/", views.report_recompute, name="report-recompute"),
    path("slos/<int:target_id>/", views.slo_update, name="slo-update"),
    path("replay/", views.replay, name="replay"),
    path("candidates/", views.candidates, name="candidates"),
    path("sweep/", views.sweep, name="sweep"),
    path("proposals/", views.proposals, name="proposals"),
    path("proposals/<int:job_id>/draft/", views.proposal_draft, name="proposal-draft"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("versions/<str:name>/keyword-health/", views.keyword_health, name="keyword-health"),
    path("jobs/<int:job_id>/adopt/", views.candidate_adopt, name="adopt"),
    path("jobs/<int:job_id>/apply/", views.sweep_apply, name="sweep-apply"),
    path("costs/", views.cost_page, name="costs"),
    path("costs/settings/", views.cost_settings_update, name="cost-settings"),
    path("costs/prometheus-rules.yaml", views.prometheus_rules, name="prometheus-rules"),
]
