"""Prefect 3 flows of the fleet, one module per flow, and their deployments (`flows.serve`).

retrain-regime-model (`flows.retrain`), tune-parameters (`flows.tune`), daily-pnl-report
(`flows.pnl_report`), rollout-config (`flows.rollout`), fleet-control (`flows.fleet_control`).
Nothing is imported here: a module loads Prefect only when it is itself imported.
"""

__all__: list[str] = []
