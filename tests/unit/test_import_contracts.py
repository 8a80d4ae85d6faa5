"""The import contracts (`[tool.importlinter]` in pyproject.toml, run by `make lint`) catch what they are
for: each import below, put into today's import graph, breaks the contract named beside it.

`lint-imports` proves the code keeps the contracts; this proves the contracts would notice if it did
not: the cycles this project has had (engine <-> settings, control <-> worker, bots <-> ml,
backtest <-> report <-> sweep, the sim's instruments <-> payloads and factory <-> sim), and the bot
core (`bots.core`) reaching up.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter.api import read_configuration
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import Contract, ContractCheck

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
TYPES: dict[str, type[Contract]] = {
    "layers": LayersContract,
    "acyclic_siblings": AcyclicSiblingsContract,
    "forbidden": ForbiddenContract,
}
CORE = "bots.core.core"  # the bot core


@cache
def _config() -> dict[str, Any]:
    return read_configuration(str(PYPROJECT))


@cache
def _graph() -> grimp.ImportGraph:
    session = _config()["session_options"]
    return grimp.build_graph(
        *session["root_packages"],
        include_external_packages=str(session.get("include_external_packages")).lower() == "true",
        cache_dir=None,
    )


def _check(contract_id: str, *imports: tuple[str, str]) -> ContractCheck:
    """The contract `contract_id` on today's graph plus `imports`."""
    config = _config()
    (options,) = [c for c in config["contracts_options"] if c.get("id") == contract_id]
    graph = copy.deepcopy(_graph())
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported)
    contract = TYPES[options["type"]](
        name=options["name"], session_options=config["session_options"], contract_options=options
    )
    return contract.check(graph, verbose=False)


def _links(value: object) -> set[tuple[str, str]]:
    """Every (importer, imported) pair anywhere in a contract's report."""
    if isinstance(value, dict):
        inner = set().union(*(_links(v) for v in value.values()))
        if {"importer", "imported"} <= value.keys():
            inner.add((value["importer"], value["imported"]))
        return inner
    if isinstance(value, list | tuple | set | frozenset):
        return set().union(*(_links(v) for v in value))
    return set()


def test_every_module_has_a_layer() -> None:
    """A new module is placed in the layers (the contract lists bots.engine and bots.exchange module by
    module, so it cannot see one that is not)."""
    (options,) = [c for c in _config()["contracts_options"] if c.get("id") == "layers"]
    layers = {
        name.strip().strip("()") for layer in options["layers"] for name in layer.replace("|", ":").split(":")
    }
    # packages whose modules are listed one by one
    containers = {"bots", "bots.engine", "bots.exchange", "bots.venues", "bots.venues.grvt"}
    unplaced = [
        module
        for module in sorted(_graph().modules)
        if module.split(".")[0] in _config()["session_options"]["root_packages"]
        and module not in containers
        and not any(module == layer or module.startswith(f"{layer}.") for layer in layers)
    ]
    assert unplaced == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("bots.engine.regime", "settings.models"),  # the engine takes its own config
        ("bots.control", "bots.worker"),
        ("bots.core.blend", "ml.inference"),  # the core's regime blend does not reach into ml
        (CORE, "settings.models"),
        (CORE, "ml.registry"),
        (CORE, "bots.worker"),
        (CORE, "bots.exchange.base"),  # the core takes events, not the exchange
        ("bots.engine.quoter", CORE),
        ("bots.exchange.events", "bots.engine.quoter"),  # value types below the engine
        ("bots.errors", "settings"),
        ("settings.models", "bots.exchange.base"),
        ("settings.models", "bots.venues.grvt.execution"),  # settings read the venue's config, not its client
        ("bots.venues.grvt.config", "settings.models"),
        ("bots.venues.grvt.execution", "bots.store.ledger"),
        ("bots.store.ledger", "ml.registry"),
        ("ml.backtest", "bots.worker"),
        ("bots.worker", "bots.ops.supervisor"),
        ("flows.retrain", "bots.cli"),
    ],
)
def test_an_import_up_the_layers_breaks_the_layers_contract(importer: str, imported: str) -> None:
    check = _check("layers", (importer, imported))
    assert not check.kept
    assert (importer, imported) in _links(check.metadata["invalid_dependencies"])


@pytest.mark.parametrize(
    ("importer", "imported", "package"),
    [
        ("ml.results", "ml.backtest", "ml"),  # ml.backtest imports ml.results
        ("ml.results", "ml.sweep", "ml"),
        ("bots.exchange.sim.market", "bots.exchange.factory", "bots.exchange"),
        ("bots.venues.grvt.server.payloads", "bots.venues.grvt.server.exchange", "bots.venues.grvt.server"),
        ("bots.store.schema", "bots.store.ledger", "bots.store"),
        ("bots.engine.types", "bots.engine.quoter", "bots.engine"),
        ("settings.models", "settings.fleet", "settings"),
        ("flows.common", "flows.rollout", "flows"),
    ],
)
def test_a_cycle_inside_a_package_breaks_the_acyclic_contract(
    importer: str, imported: str, package: str
) -> None:
    assert package not in _check("acyclic").metadata["cycle_breakers_by_package"]
    check = _check("acyclic", (importer, imported))
    assert not check.kept
    assert package in check.metadata["cycle_breakers_by_package"]


def test_a_cycle_inside_the_bot_core_is_caught() -> None:
    assert "bots.core" not in _check("acyclic").metadata["cycle_breakers_by_package"]
    check = _check("acyclic", ("bots.core.orders", CORE))  # the core imports its order book
    assert "bots.core" in check.metadata["cycle_breakers_by_package"]


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("bots.engine.quoter", "time"),
        ("bots.engine.portfolio", "sqlalchemy"),
        ("bots.exchange.events", "asyncio"),
        ("bots.venues.grvt.config", "pysdk"),  # validating a config loads no venue SDK
        (CORE, "time"),
        (CORE, "aiohttp"),
        (CORE, "prometheus_client"),
    ],
)
def test_io_or_a_clock_in_the_engine_or_core_breaks_the_pure_core_contract(
    importer: str, imported: str
) -> None:
    check = _check("pure-core", (importer, imported))
    assert not check.kept
    assert (importer, imported) in _links(check.metadata["invalid_chains"])
