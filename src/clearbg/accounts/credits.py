"""Credits are money: every change of a balance is a ledger row in the same transaction.

Balances are integers in hundredths of a credit. A charge is a conditional update
(``balance >= cost``), so concurrent requests can never spend the same credit twice; a
``reference`` (unique in the ledger) makes a charge happen at most once per image.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clearbg.errors import InsufficientCreditsError, InvalidOptionError
from clearbg.store.models import ApiKey, LedgerEntry

__all__ = ["add_credits", "cents", "charge", "credits", "refund"]


def cents(credits: float) -> int:
    return round(credits * 100)


def credits(cents_: int) -> float:
    return cents_ / 100


def charge(db: Session, key: ApiKey, cost_cents: int, reference: str | None = None) -> int:
    """Take ``cost_cents`` from the key (unless unlimited); the new balance, or 402."""
    if cost_cents <= 0 or key.unlimited:
        return key.balance_cents
    result = db.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id, ApiKey.balance_cents >= cost_cents)
        .values(balance_cents=ApiKey.balance_cents - cost_cents)
        .returning(ApiKey.balance_cents)
    ).first()
    if result is None:
        raise InsufficientCreditsError(
            f"this request costs {credits(cost_cents):g} credits; the key has "
            f"{credits(db.scalar(select(ApiKey.balance_cents).where(ApiKey.id == key.id)) or 0):g}"
        )
    balance = int(result[0])
    db.add(
        LedgerEntry(
            api_key_id=key.id,
            amount_cents=-cost_cents,
            balance_after_cents=balance,
            reason="charge",
            reference=reference,
        )
    )
    key.balance_cents = balance
    return balance


def refund(db: Session, key: ApiKey, amount_cents: int, reference: str | None = None) -> int:
    return _credit(db, key, amount_cents, "refund", reference, "")


def add_credits(db: Session, key: ApiKey, amount_cents: int, note: str = "") -> int:
    if amount_cents <= 0:
        raise InvalidOptionError("credits", "must be more than zero")
    return _credit(db, key, amount_cents, "topup", None, note)


def _credit(
    db: Session, key: ApiKey, amount_cents: int, reason: str, reference: str | None, note: str
) -> int:
    if amount_cents <= 0 or key.unlimited:
        return key.balance_cents
    result = db.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id)
        .values(balance_cents=ApiKey.balance_cents + amount_cents)
        .returning(ApiKey.balance_cents)
    ).one()
    balance = int(result[0])
    db.add(
        LedgerEntry(
            api_key_id=key.id,
            amount_cents=amount_cents,
            balance_after_cents=balance,
            reason=reason,
            reference=reference,
            note=note,
        )
    )
    key.balance_cents = balance
    return balance
