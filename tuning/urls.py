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
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/adopt/", views.candidate_adopt, name="adopt"),
    path("costs/", views.cost_page, name="costs"),
    path("costs/settings/", views.cost_settings_update, name="cost-settings"),
    path("costs/prometheus-rules.yaml", views.prometheus_rules, name="prometheus-rules"),
]
