"""Per-request DataLoaders: nested fields load in one query per level, never one per parent.

Each loader is built for one caller and passes it to the service, so batching never widens
what a caller can see.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from tenants import operations, organization, roles
from tenants.admin import Caller
from tenants.database import Database
from tenants.directory_models import DirectoryDepartment
from tenants.models import Instance, InstanceEvent
from tenants.operations import InstanceKey
from tenants.organization import DepartmentKey
from tenants.roles import Grant, MemberRoles, RoleCatalog


@dataclass(frozen=True, slots=True)
class Loaders:
    instance: DataLoader[InstanceKey, Instance | None]
    history: DataLoader[InstanceKey, list[InstanceEvent]]
    member_roles: DataLoader[int, MemberRoles | None]
    """A member's grants and effective roles, by the member's row id."""
    department: DataLoader[DepartmentKey, DirectoryDepartment | None]
    department_grants: DataLoader[int, list[Grant]]
    """The grants on a department, by its row id."""


def make_loaders(database: Database, caller: Caller, catalogs: Mapping[str, RoleCatalog]) -> Loaders:
    async def load_instances(keys: list[InstanceKey]) -> list[Instance | None]:
        async with database.reader() as session:
            found = await operations.list_instances_by_keys(session, caller=caller, keys=keys)
        return [found.get(key) for key in keys]

    async def load_histories(keys: list[InstanceKey]) -> list[list[InstanceEvent]]:
        async with database.reader() as session:
            found = await operations.list_instance_histories(session, caller=caller, keys=keys)
        return [found.get(key, []) for key in keys]

    async def load_member_roles(keys: list[int]) -> list[MemberRoles | None]:
        async with database.reader() as session:
            found = await roles.list_member_roles(session, caller=caller, member_ids=keys, catalogs=catalogs)
        return [found.get(key) for key in keys]

    async def load_departments(keys: list[DepartmentKey]) -> list[DirectoryDepartment | None]:
        async with database.reader() as session:
            found = await organization.list_departments_by_keys(session, caller=caller, keys=keys)
        return [found.get(key) for key in keys]

    async def load_department_grants(keys: list[int]) -> list[list[Grant]]:
        async with database.reader() as session:
            found = await roles.list_department_grants(session, caller=caller, department_ids=keys)
        return [found.get(key, []) for key in keys]

    return Loaders(
        instance=DataLoader(load_fn=load_instances),
        history=DataLoader(load_fn=load_histories),
        member_roles=DataLoader(load_fn=load_member_roles),
        department=DataLoader(load_fn=load_departments),
        department_grants=DataLoader(load_fn=load_department_grants),
    )
