"""Sessions in the shared store: the record, and per-member and per-tenant indexes of them.

Any replica reads any session; ending one (`end`) takes the record atomically, so of two
replicas ending the same session only one sees it end. The indexes let a revocation find a
member's (or a whole tenant's) live sessions; they may list sessions that already expired,
which `end` simply finds gone.
"""

from gateway.sso.records import SessionRecord, member_index_key, session_key, tenant_index_key
from gateway.store import Store


class SessionBook:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def save(self, record: SessionRecord, *, ttl_s: float) -> None:
        """Store a new session and index it under its member and its tenant."""
        await self._store.set(session_key(record.ref), record.to_bytes(), ttl_s)
        scope = (record.product, record.tenant_id, record.is_test)
        await self._store.add_to_set(member_index_key(*scope, record.user_name), record.ref, ttl_s)
        await self._store.add_to_set(tenant_index_key(*scope), record.ref, ttl_s)

    async def replace(self, record: SessionRecord, *, ttl_s: float) -> None:
        """Write a changed record of a live session (renewed tokens), keeping it to `ttl_s`."""
        await self._store.set(session_key(record.ref), record.to_bytes(), ttl_s)

    async def get(self, ref: str) -> SessionRecord | None:
        raw = await self._store.get(session_key(ref))
        return SessionRecord.from_bytes(raw) if raw is not None else None

    async def end(self, ref: str) -> SessionRecord | None:
        """Remove a session; returns it if this call ended it, None if it was already gone."""
        raw = await self._store.take(session_key(ref))
        if raw is None:
            return None
        record = SessionRecord.from_bytes(raw)
        scope = (record.product, record.tenant_id, record.is_test)
        await self._store.remove_from_set(member_index_key(*scope, record.user_name), ref)
        await self._store.remove_from_set(tenant_index_key(*scope), ref)
        return record

    async def member_refs(self, *, product: str, tenant_id: str, is_test: bool, user_name: str) -> set[str]:
        return await self._store.set_members(member_index_key(product, tenant_id, is_test, user_name))

    async def tenant_refs(self, *, product: str, tenant_id: str, is_test: bool) -> set[str]:
        return await self._store.set_members(tenant_index_key(product, tenant_id, is_test))
