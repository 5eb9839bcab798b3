import json

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from routing.management.base import VersionCommand
from tuning.jobs import parse_period, version_named
from tuning.replay import replay_labeled, replay_traffic
from tuning.selectors import SOURCES, cost_settings


def _pct(rate: dict) -> str:
    if rate.get("value") is None:
        return "n/a"
    return f"{rate['value']:.1%} [{rate['low']:.1%}, {rate['high']:.1%}] (n={rate['n']:g})"


class Command(VersionCommand):
    help = (
        "What-if replay of a classifier version (drafts too) over labeled items and the "
        "synced traffic of a period: flips, confusion matrix, McNemar vs a baseline, "
        "predicted SLM usage and cost per 1k requests."
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", required=True)
        parser.add_argument("--baseline", default="", help="Another version (default: live).")
        parser.add_argument("--since", required=True, help="ISO date-time with time zone.")
        parser.add_argument("--until", required=True, help="ISO date-time with time zone.")
        parser.add_argument(
            "--labels",
            default="headline",
            help="Label sources: headline (default; rates estimate traffic), discovery, imported.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, version_name, baseline, since, until, labels, json: bool, **options):
        try:
            start, end = parse_period({"since": since, "until": until})
            candidate = version_named(version_name)
            base = version_named(baseline, "baseline") if baseline else None
        except ValidationError as e:
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in e.message_dict.items())
            raise CommandError(problems) from None
        sources = tuple(s.strip() for s in labels.split(",") if s.strip())
        if not sources or set(sources) - set(SOURCES):
            raise CommandError(f"--labels: choose from {', '.join(SOURCES)}")
        labels = replay_labeled(candidate, start, end, baseline=base, sources=sources)
        traffic = replay_traffic(candidate, start, end, costs=cost_settings())
        if json:
            self.stdout.write(_dumps({"labels": labels, "traffic": traffic}))
            return
        m, old = labels["candidate_metrics"], labels["baseline_metrics"]
        test = labels["mcnemar"]
        p = (
            "n/a"
            if test["p_exact"] is None
            else f"{test['p_exact']:.4f} (mid-p {test['p_mid']:.4f})"
        )
        counts = labels["labels"]
        lines = [
            f"{candidate.name} vs {labels['baseline']} on {labels['items']} labeled items ("
            + ", ".join(f"{s} {counts[s]['inputs']}" for s in sources)
            + ")",
            f"  misroute  {_pct(m['misroute'])}  (baseline {_pct(old['misroute'])})",
            f"  matrix    {m['matrix']}",
            f"  flips     {labels['flip_count']}: {test['c']} fixed, {test['b']} broken; "
            f"McNemar p = {p}",
            f"traffic: {traffic['requests']} requests",
            f"  SLM usage {_pct(traffic['predicted_slm_usage'])} "
            f"(live {_pct(traffic['live_slm_usage'])})",
            f"  cost/1k   {_money(traffic['predicted_cost_per_1k'])} "
            f"(live {_money(traffic['live_cost_per_1k'])})",
        ]
        if labels.get("warning"):
            unseen = labels["built_from"]["unseen_comparison"]
            lines += [
                f"warning: {labels['warning']}",
                f"  unseen labels: misroute {_pct(unseen['candidate_metrics']['misroute'])} "
                f"(baseline {_pct(unseen['baseline_metrics']['misroute'])})",
            ]
        self.stdout.write("\n".join(lines))


def _money(value) -> str:
    return "n/a" if value is None else f"${value:.2f}"


def _dumps(data) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)
