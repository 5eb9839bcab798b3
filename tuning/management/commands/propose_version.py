import json

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from cascade_admin.errors import Conflict
from routing.management.base import VersionCommand
from tuning import proposals
from tuning.models import Job, JobKind, JobStatus
from tuning.services import job_run_here, proposal_draft

NOT_BETTER = 3  # exit status when the proposal does not beat the base


def _band(text: str) -> list[float]:
    low, _, high = text.partition("-")
    try:
        return [float(low), float(high)]
    except ValueError:
        raise CommandError(f"--slm: give a range like 0.60-0.70, got {text!r}") from None


def _rate(rate: dict | None) -> str:
    if not rate or rate.get("value") is None:
        return "n/a"
    return f"{rate['value']:.1%} [{rate['low']:.1%}, {rate['high']:.1%}] (n={rate['n']:.0f})"


class Command(VersionCommand):
    help = (
        "Propose the next classifier version from every labeled request: keyword additions "
        "and removals and the length and turn thresholds, searched together (--kind "
        "keywords), or a learned scorer of weighted substrings with its cut and thresholds "
        "(--kind scorer), with cross-validated estimates. Creates the draft when it beats "
        "the base out of sample (exit status 3 when it does not)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base", required=True, help="The version to improve on.")
        parser.add_argument("--kind", choices=["keywords", "scorer"], default="keywords")
        parser.add_argument("--name", default="", help="The new draft's name.")
        parser.add_argument("--slm", default="", help="SLM share band, e.g. 0.60-0.70.")
        parser.add_argument(
            "--labels", default="", help="Sources: headline,discovery,imported (default all)."
        )
        parser.add_argument("--fn-weight", type=float, default=1.0)
        parser.add_argument(
            "--pin",
            action="append",
            default=[],
            help="Never remove this keyword (a scorer keeps it as a hard trigger).",
        )
        parser.add_argument("--max-changes", type=int, default=20)
        parser.add_argument("--folds", type=int, default=10)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--holdout", type=float, default=0.0, help="Share of inputs set aside (0-0.5)."
        )
        parser.add_argument("--since", default="", help="Labels and traffic from (ISO).")
        parser.add_argument("--until", default="", help="Labels and traffic until (ISO).")
        parser.add_argument("--no-draft", action="store_true", help="Only report.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **o):
        params = {
            "kind": o["kind"],
            "base": o["base"],
            "name": o["name"],
            "fn_weight": o["fn_weight"],
            "max_changes": o["max_changes"],
            "folds": o["folds"],
            "seed": o["seed"],
            "holdout": o["holdout"],
            "pinned": o["pin"],
            "since": o["since"],
            "until": o["until"],
        }
        if o["slm"]:
            params["slm_band"] = _band(o["slm"])
        if o["labels"]:
            params["labels"] = [s.strip() for s in o["labels"].split(",") if s.strip()]
        job = job_run_here(actor="cli", kind=JobKind.PROPOSAL, params=params)
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(job.error)
        result = job.result
        draft = None
        if result["beats_base"] and o["name"] and not o["no_draft"]:
            try:
                draft = proposal_draft(actor="cli", job=job, name=o["name"])
            except (Conflict, ValidationError) as e:
                raise CommandError(str(e)) from None
        if o["json"]:
            out = proposals.summary_json(result) | {
                "proposal": job.pk,
                "draft": draft.name if draft else None,
            }
            self.stdout.write(json.dumps(out, ensure_ascii=False, indent=2))
        else:
            self.stdout.write(self._text(result, job, draft))
        if not result["beats_base"]:
            raise SystemExit(NOT_BETTER)

    def _text(self, r: dict, job: Job, draft) -> str:
        counts = r["labels"]["counts"]
        sources = ", ".join(
            f"{s} {counts[s]['inputs']} inputs / {counts[s]['requests']} requests"
            for s in r["labels"]["sources"]
        )
        lines = [
            f"Proposal {job.pk} ({r.get('kind', 'keywords')}) from {r['base_version']} "
            f"(labels: {sources}; {r['folds']}-fold cross-validation, seed {r['seed']})",
        ]
        if r.get("kind") == "scorer":
            lines += self._scorer_lines(r)
        for c in r["changes"]:
            ev = c.get("evidence")
            if not ev:
                continue  # a scorer's changes: shown above
            if c["op"] == "threshold":
                what = f"{c['field']} {c['from']} -> {c['to']}"
            else:
                what = f"{c['op']:6} {c['term']!r}"
            moved = ev.get("traffic_share_moved")
            lines.append(
                f"  {what}: fixes {ev['fixed_inputs']} ({ev['fixed_requests']} requests), "
                f"breaks {ev['broken_inputs']} ({ev['broken_requests']})"
                + (f", moves {moved:.1%} of traffic" if moved is not None else "")
            )
        e, b, s = r["estimate"], r["base"], r["in_sample"]
        lines += [
            f"  misroute  out of sample {_rate(e['misroute'])}; base {_rate(b['misroute'])}; "
            f"in sample {_rate(s['misroute'])}",
            f"  FN rate   {_rate(e['fn_rate'])}   FP rate {_rate(e['fp_rate'])}",
            f"  SLM share {_rate(e['slm_share'])} (from {r['slm_source']}; band "
            f"{r['band'][0]:.0%}-{r['band'][1]:.0%})",
            f"  {r['verdict']}",
        ]
        if r.get("holdout"):
            h = r["holdout"]
            lines.append(
                f"  held out ({h['proposal']['inputs']} inputs, never searched): misroute "
                f"{_rate(h['proposal']['misroute'])}; base {_rate(h['base']['misroute'])}"
            )
        if draft:
            lines.append(f"  Draft {draft.name} created.")
        elif r["beats_base"]:
            lines.append(f"  Make the draft: POST /api/v1/proposals/{job.pk}/draft/ or --name.")
        return "\n".join(lines)

    def _scorer_lines(self, r: dict) -> list[str]:
        m, rule = r["model"], r["rule"]

        def listed(pairs):
            return ", ".join(f"{f!r} {w:+.2f}" for f, w in pairs[:8]) or "-"

        return [
            f"  scorer: {m['features']} weighted substrings (cap {m['cap']}, C {m['strength']}), "
            f"strong at score >= {r['scorer']['threshold']}; length > {rule['token_threshold']}, "
            f"turns > {rule['turn_threshold']}"
            + (f", pinned {', '.join(rule['keywords'])}" if rule["keywords"] else ""),
            f"  pushes strong: {listed(m['top_strong'])}",
            f"  pushes weak:   {listed(m['top_weak'])}",
        ]
