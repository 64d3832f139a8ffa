from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Reconciler, cleanup, audit, request log, metrics, health and the operators' dashboard.

    The layers below cannot import these; they offer hooks instead, connected here: the gateway's
    hooks on every Hetzner exchange (logged, audited, counted per hour), the contract's signal after
    every call it answers, the static IPs' signal after every swap, the console's signal after every
    operator's action, the console's "Run a reconcile pass now", and the spend meter that the budgets
    compare.
    """

    name = "octoprovider.operations"
    label = "operations"
    verbose_name = "octoprovider operations"

    def ready(self):
        from instances.reuse import parked_server_event
        from octoprovider import hetzner
        from octoprovider.contract.signals import contract_call_answered
        from octoprovider.core.admin import console_action_done, offer_reconcile_pass
        from octoprovider.core.guardrails import offer_spend_meter
        from octoprovider.operations import audit, charts, costing, requestlog, reuse_figures
        from octoprovider.operations.reconciler import reconcile_pass
        from staticips.services import static_ips_swapped

        for observer in (requestlog, audit):  # the log line first: the audit row may fail
            hetzner.add_response_hook(observer.on_hetzner_response)
            hetzner.add_failure_hook(observer.on_hetzner_failure)
        hetzner.add_response_hook(charts.count_hetzner_request)
        contract_call_answered.connect(audit.record_contract_call, dispatch_uid="audit-contract-calls")
        static_ips_swapped.connect(audit.record_static_ip_swap, dispatch_uid="audit-static-ip-swaps")
        console_action_done.connect(audit.record_console_action, dispatch_uid="audit-console-actions")
        parked_server_event.connect(reuse_figures.count_event, dispatch_uid="reuse-metrics")
        offer_reconcile_pass(lambda: reconcile_pass(full=True))
        offer_spend_meter(costing.spend_for_budgets, ahead=costing.measure_spend_ahead)
