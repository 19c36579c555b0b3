"""the Monitor gateway: application settings, usage by client IP hash, anonymous quota

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gateway_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(
            sa.Column("upstream", sa.String(length=10), nullable=False, server_default="local")
        )
        batch_op.add_column(sa.Column("upstream_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("upstream_key", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("anon_daily_limit", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("ip_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("key_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("credit_cost_cents", sa.BigInteger(), nullable=False, server_default="100")
        )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_ip_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("upstream_ms", sa.Double(), nullable=True))
    op.create_table(
        "anonymous_usage",
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("client_ip_hash", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"]),
        sa.PrimaryKeyConstraint("application_id", "client_ip_hash", "day"),
    )


def downgrade() -> None:
    op.drop_table("anonymous_usage")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("upstream_ms")
        batch_op.drop_column("client_ip_hash")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        for name in (
            "credit_cost_cents",
            "key_per_minute",
            "ip_per_minute",
            "anon_daily_limit",
            "upstream_key",
            "upstream_url",
            "upstream",
            "gateway_enabled",
        ):
            batch_op.drop_column(name)
