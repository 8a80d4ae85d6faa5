"""The store's identity: a random id drawn once per ledger database and kept in it.

Client order ids carry it (`bots.core.orders`), so that a bot can tell its own store's orders from
those of another store trading the same account: the worker lease guards one store only.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from bots.store.db import LedgerBase
from bots.store.schema import store_identity

__all__ = ["StoreIdentity"]

_STORE_ID_BITS = 63  # a positive BIGINT on both backends


class StoreIdentity(LedgerBase):
    """`store_id()`: this database's id, drawn at random by the first caller, the same for every later
    one (two processes racing to draw it agree on the first row written)."""

    def store_id(self) -> int:
        with self._begin() as connection:
            found = connection.execute(select(store_identity.c.store_id)).scalar_one_or_none()
            if found is not None:
                return int(found)
            values = {"id": 1, "store_id": secrets.randbits(_STORE_ID_BITS), "created_at_ns": self._now()}
            self._insert_ignore(connection, store_identity, values, ("id",))
            return int(connection.execute(select(store_identity.c.store_id)).scalar_one())
