"""Sessions, sub-accounts, balances and positions of the local GRVT exchange.

- Any non-empty API key logs in. Its main account id (the `X-Grvt-Account-Id` header) is derived from
  the key, so the same key always gets the same account; the session cookie `gravity` lasts
  `session_ttl_s`.
- A sub-account is created on its first use with the configured starting balance (USDT) and belongs
  to the main account that used it first; another main account touching it gets code 1001 (2003 for
  an order).
- Its signing key is the configured one, or else the first valid signer seen (trust on first use);
  an order signed by anyone else gets code 2000.
- Perpetual positions: signed size, average entry price, realized PnL booked into the USDT balance with
  fees (a negative fee is a rebate) and funding payments (`server.funding`); unrealized PnL at the
  mark (the synthetic mid).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bots.venues.grvt.server.book import BookOrder
from bots.venues.grvt.server.wire import ZERO, GrvtApiError

__all__ = ["Accounts", "Position", "Session", "SubAccount"]

_FILLS_KEPT = 10_000
_FINISHED_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    main_account_id: str
    expires_at_s: float


@dataclass(slots=True)
class Position:
    """A perpetual position: `size` negative when short; prices average over the opening/closing fills."""

    size: Decimal = ZERO
    entry_price: Decimal = ZERO
    exit_price: Decimal = ZERO
    exit_size: Decimal = ZERO
    realized_pnl: Decimal = ZERO

    def apply(self, is_buy: bool, qty: Decimal, price: Decimal) -> Decimal:
        """Book a fill; returns the PnL it realized."""
        signed = qty if is_buy else -qty
        realized = ZERO
        if self.size and (self.size > 0) != is_buy:  # reducing (maybe flipping)
            closed = min(qty, abs(self.size))
            realized = closed * (price - self.entry_price) * (1 if self.size > 0 else -1)
            self.exit_price = (self.exit_price * self.exit_size + price * closed) / (self.exit_size + closed)
            self.exit_size += closed
            self.realized_pnl += realized
            new_size = self.size + signed
            if new_size == 0:
                self.entry_price = ZERO
            elif (new_size > 0) != (self.size > 0):
                self.entry_price = price
            self.size = new_size
        else:
            total = abs(self.size) + qty
            self.entry_price = (self.entry_price * abs(self.size) + price * qty) / total
            self.size += signed
        return realized


@dataclass(slots=True)
class SubAccount:
    sub_account_id: str
    main_account_id: str
    balance: Decimal
    signer: str | None  # lower case; None until the first valid order (trust on first use)
    positions: dict[str, Position] = field(default_factory=dict)
    active: dict[str, BookOrder] = field(default_factory=dict)  # by order_id, oldest first
    finished: dict[str, BookOrder] = field(default_factory=dict)  # by order_id, oldest first
    fills: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_FILLS_KEPT))
    funding: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_FILLS_KEPT))  # payments

    def order(self, order_id: str | None, client_order_id: str | None) -> BookOrder | None:
        """An active or finished order by id, else by client id (the active one first)."""
        if order_id:
            return self.active.get(order_id) or self.finished.get(order_id)
        for orders in (self.active, self.finished):
            for order in reversed(orders.values()):
                if order.client_order_id == client_order_id:
                    return order
        return None

    def finish(self, order: BookOrder) -> None:
        """Move an order that reached a final state to the history."""
        self.active.pop(order.order_id, None)
        if len(self.finished) >= _FINISHED_KEPT:
            del self.finished[next(iter(self.finished))]
        self.finished[order.order_id] = order

    def position(self, instrument: str) -> Position:
        return self.positions.setdefault(instrument, Position())


class Accounts:
    """Sessions and sub-accounts; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        starting_balance: Decimal,
        signers: Mapping[str, str],
        balances: Mapping[str, Decimal],
        session_ttl_s: float,
    ) -> None:
        self._starting = starting_balance
        self._signers = {sub: addr.lower() for sub, addr in signers.items()}
        self._balances = dict(balances)
        self._ttl = session_ttl_s
        self._sessions: dict[str, Session] = {}
        self.sub_accounts: dict[str, SubAccount] = {}

    def login(self, api_key: str, now_s: float) -> Session:
        if not api_key:
            raise GrvtApiError(1000)
        main = "0x" + hashlib.sha256(api_key.encode()).hexdigest()[:40]
        session = Session(secrets.token_urlsafe(24), main, now_s + self._ttl)
        self._sessions[session.token] = session
        return session

    def session(self, token: str | None, account_header: str | None, now_s: float) -> Session | None:
        """The live session of a request: its cookie and its account header must both match."""
        session = self._sessions.get(token or "")
        if session is None or session.expires_at_s <= now_s or account_header != session.main_account_id:
            return None
        return session

    def sub_account(
        self, session: Session | None, sub_account_id: Any, *, for_order: bool = False
    ) -> SubAccount:
        """The session's sub-account, created on first use; 1000 without a session, 3020 for a bad id,
        1001 (2003 for an order) when another main account owns it."""
        if session is None:
            raise GrvtApiError(1000)
        sub = str(sub_account_id) if isinstance(sub_account_id, int | str) else ""
        if not sub.isdigit() or int(sub) >= 2**64:
            raise GrvtApiError(3020)
        account = self.sub_accounts.get(sub)
        if account is None:
            balance = self._balances.get(sub, self._starting)
            account = SubAccount(sub, session.main_account_id, balance, self._signers.get(sub))
            self.sub_accounts[sub] = account
        elif account.main_account_id != session.main_account_id:
            raise GrvtApiError(2003 if for_order else 1001)
        return account

    @staticmethod
    def authorize_signer(account: SubAccount, signer: str) -> None:
        """The account's key signs its orders; the first valid signer becomes it when none is set."""
        if account.signer is None:
            account.signer = signer.lower()
        elif account.signer != signer.lower():
            raise GrvtApiError(2000)
