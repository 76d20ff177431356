"""The open API's orders for the simulator's cases: a mock order under each run's own id.

The cases order `<mock id>-<run suffix>` (for example `MOCKONETIMENEW-SIM4F2A9B0C1D`), so that
every run has fresh orders. `ScenarioOrderBook` answers such an id with the contents of the
mock it names, re-keyed to the new id and line id (`<id>-000001`), so a vendor server that
queries the order learns the charging mode the case means (one-time, on-demand, trial …).
"""

from starlette.applications import Starlette

from gateway.koogallery.orders import OrderInfo
from gateway.simulator.open_api import (
    DEMO_ACCESS_KEY,
    DEMO_SECRET_KEY,
    MOCK_ORDER_IDS,
    OrderBook,
    create_open_api_app,
    mock_orders,
)


def rekey_order(order: OrderInfo, order_id: str) -> OrderInfo:
    """`order` under a new id; its lines take ids `<order_id>-000001`, `-000002` …"""
    lines = [
        line.model_copy(update={"order_line_id": f"{order_id}-{number:06d}"})
        for number, line in enumerate(order.order_line, start=1)
    ]
    return order.model_copy(update={"order_id": order_id, "order_line": lines})


class ScenarioOrderBook(OrderBook):
    """An `OrderBook` that also serves `<mock id>-<suffix>` as a copy of that mock."""

    def __init__(self) -> None:
        super().__init__()
        self._templates = mock_orders()
        # Longest first, so MOCKONDEMANDPKG-… is not read as MOCKONDEMAND.
        self._prefixes = sorted(MOCK_ORDER_IDS, key=len, reverse=True)
        self._added_ids: set[str] = set()

    def add(self, order_info: OrderInfo) -> None:
        super().add(order_info)
        self._added_ids.add(order_info.order_id)

    def find(self, order_id: str) -> OrderInfo | None:
        """Added orders first, then a case's order, then what `OrderBook` finds."""
        if order_id not in self._added_ids:
            for mock_id in self._prefixes:
                if order_id.startswith(f"{mock_id}-"):
                    return rekey_order(self._templates[mock_id], order_id)
        return super().find(order_id)


def create_scenario_open_api_app() -> Starlette:
    """The fake open API with the demo credentials, the mock orders and the cases' orders."""
    return create_open_api_app(credentials={DEMO_ACCESS_KEY: DEMO_SECRET_KEY}, orders=ScenarioOrderBook())
