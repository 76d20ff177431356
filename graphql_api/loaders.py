"""Per-request DataLoaders: nested fields load in one query per level, never one per parent.

Each loader is built for one caller and passes it to the service, so batching never widens
what a caller can see.
"""

from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from tenants import operations
from tenants.admin import Caller
from tenants.database import Database
from tenants.models import Instance, InstanceEvent
from tenants.operations import InstanceKey


@dataclass(frozen=True, slots=True)
class Loaders:
    instance: DataLoader[InstanceKey, Instance | None]
    history: DataLoader[InstanceKey, list[InstanceEvent]]


def make_loaders(database: Database, caller: Caller) -> Loaders:
    async def load_instances(keys: list[InstanceKey]) -> list[Instance | None]:
        async with database.reader() as session:
            found = await operations.list_instances_by_keys(session, caller=caller, keys=keys)
        return [found.get(key) for key in keys]

    async def load_histories(keys: list[InstanceKey]) -> list[list[InstanceEvent]]:
        async with database.reader() as session:
            found = await operations.list_instance_histories(session, caller=caller, keys=keys)
        return [found.get(key, []) for key in keys]

    return Loaders(instance=DataLoader(load_fn=load_instances), history=DataLoader(load_fn=load_histories))
