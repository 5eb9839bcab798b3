from django.urls import path

from cascade_admin.api import Router

from . import views

router = Router()
router.register("metric-reports", views.MetricReportViewSet, basename="metric-report")
router.register("slo-targets", views.SloTargetViewSet, basename="slo-target")
router.register("tuning-jobs", views.JobViewSet, basename="tuning-job")
router.register("proposals", views.ProposalViewSet, basename="proposal")

urlpatterns = [
    path("costs/settings/", views.CostSettingsView.as_view(), name="cost-settings"),
    path("costs/summary/", views.CostSummaryView.as_view(), name="cost-summary"),
    path("costs/prometheus-rules/", views.PrometheusRulesView.as_view(), name="prometheus-rules"),
    *router.urls,
]
