"""Register a deployment slot pair and their route (idempotent), e.g. for the embedded demo.

    manage.py rollout_targets [--namespace llm] [--httproute llm-router] [--route router]
                              [--stable llm-classifier-v7] [--canary llm-classifier-v8]
                              [--admin-port-name http]

Each slot gets a Service and Deployment of its own name, a ConfigMap ``<slot>-config``, and
its pods' admin API on the Service port named ``http`` (deploy/base/classifier/*.yaml: the
pod serves ``PUT /admin/config`` on its one port). The defaults are deploy/'s names, which
docs/operator-guide.md lists.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from rollouts.models import Route, Slot
from rollouts.registry import registry_ensure


class Command(BaseCommand):
    help = "Register two deployment slots and the HTTPRoute rule that splits traffic between them."

    def add_arguments(self, parser):
        parser.add_argument("--namespace", default="ai-inference")
        parser.add_argument("--httproute", default="llm-classifier")
        parser.add_argument("--rule-index", type=int, default=0)
        parser.add_argument("--route", default="llm-classifier")
        parser.add_argument("--stable", default="llm-classifier-blue")
        parser.add_argument("--canary", default="llm-classifier-green")
        # Blank would mean "every port of the EndpointSlice": fine for one port, wrong once a
        # slot's Service gains a second one (say, for metrics).
        parser.add_argument("--admin-port-name", default="http")

    @transaction.atomic
    def handle(
        self, *args, namespace, httproute, rule_index, route, stable, canary, admin_port_name, **o
    ):
        slots = {}
        for name in (stable, canary):
            slots[name], created = registry_ensure(
                actor="cli",
                model=Slot,
                name=name,
                namespace=namespace,
                service=name,
                deployment=name,
                configmap=f"{name}-config",
                # The label deploy/'s pods carry (informational: pods are found by Service).
                pod_selector=f"app.kubernetes.io/instance={name}",
                admin_port_name=admin_port_name,
            )
            self.stdout.write(f"slot {name}: {'created' if created else 'exists'}")
        _, created = registry_ensure(
            actor="cli",
            model=Route,
            name=route,
            namespace=namespace,
            httproute=httproute,
            rule_index=rule_index,
            stable_backend=stable,
            canary_backend=canary,
            stable_slot=slots[stable],
            canary_slot=slots[canary],
        )
        self.stdout.write(f"route {route}: {'created' if created else 'exists'}")
