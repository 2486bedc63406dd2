"""The input data contract (shared/data-contract.md v1) as code.

Every reader, validator, generator and test takes table and column names from here, so a
change to the contract is one edit.
"""

from __future__ import annotations

from dataclasses import dataclass

ORDER_STATUSES = ("created", "paid", "shipped", "delivered", "completed", "refunded", "cancelled")
COMMISSION_STATUSES = ("pending", "settled", "reversed")

# Logical types used by validation and staging SQL.
STRING, INT, DECIMAL, TIMESTAMP, BOOL, ENUM = "string", "int", "decimal", "timestamp", "bool", "enum"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    name: str
    required: bool
    key: str | None
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


ORDERS = Table(
    "orders",
    required=True,
    key="order_id",
    columns=(
        Column("order_id", STRING, True),
        Column("shop_id", STRING, True),
        Column("buyer_id", STRING, True),
        Column("product_id", STRING, True),
        Column("quantity", INT, True),
        Column("amount", DECIMAL, True),
        Column("created_at", TIMESTAMP, True),
        Column("paid_at", TIMESTAMP),
        Column("status", ENUM, True, ORDER_STATUSES),
        Column("refunded_at", TIMESTAMP),
        Column("refund_amount", DECIMAL),
        Column("referrer_id", STRING),
        Column("device_id", STRING),
        Column("ip", STRING),
        Column("receiver_name", STRING),
        Column("receiver_phone", STRING),
        Column("address", STRING),
        Column("payment_account", STRING),
        Column("carrier", STRING),
        Column("tracking_no", STRING),
        Column("shipped_at", TIMESTAMP),
        Column("delivered_at", TIMESTAMP),
        Column("review_rating", INT),
        Column("reviewed_at", TIMESTAMP),
    ),
)

ACCOUNTS = Table(
    "accounts",
    required=True,
    key="account_id",
    columns=(
        Column("account_id", STRING, True),
        Column("registered_at", TIMESTAMP, True),
        Column("inviter_id", STRING),
        Column("is_distributor", BOOL),
        Column("phone", STRING),
        Column("device_id", STRING),
        Column("ip", STRING),
        Column("nickname", STRING),
    ),
)

PRODUCTS = Table(
    "products",
    required=False,
    key="product_id",
    columns=(
        Column("product_id", STRING, True),
        Column("shop_id", STRING),
        Column("name", STRING),
        Column("price", DECIMAL),
        Column("cost", DECIMAL),
        Column("category", STRING),
        Column("is_virtual", BOOL),
    ),
)

COMMISSIONS = Table(
    "commissions",
    required=False,
    key=None,  # one row per (order_id, level); checked in staging
    columns=(
        Column("order_id", STRING, True),
        Column("beneficiary_id", STRING, True),
        Column("level", INT, True),
        Column("amount", DECIMAL, True),
        Column("status", ENUM, True, COMMISSION_STATUSES),
        Column("settled_at", TIMESTAMP),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (ORDERS, ACCOUNTS, PRODUCTS, COMMISSIONS)}
