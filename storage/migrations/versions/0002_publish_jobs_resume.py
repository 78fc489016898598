"""Let publish jobs resume on their own and survive the removal of their target environment.

Adds the team, the target environment's name, the catalog and the version being built to
``publish_jobs`` (a restarted process needs them to finish a job), ``notified_at`` (the final
notification is sent at most once), and lets ``target_environment_id`` become NULL when the
environment is removed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TARGET_FK = "fk_publish_jobs_target_environment_id_environments"


def upgrade() -> None:
    with op.batch_alter_table("publish_jobs") as batch:
        # Server defaults only fill the rows that exist; they are dropped again below.
        batch.add_column(sa.Column("team_id", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("environment", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("catalog", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("version", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("target_environment_id", existing_type=sa.Integer(), nullable=True)
        batch.drop_constraint(_TARGET_FK, type_="foreignkey")
        batch.create_foreign_key(
            _TARGET_FK, "environments", ["target_environment_id"], ["id"], ondelete="SET NULL"
        )
    op.execute(
        "UPDATE publish_jobs SET environment = "
        "(SELECT name FROM environments WHERE environments.id = publish_jobs.target_environment_id)"
    )
    with op.batch_alter_table("publish_jobs") as batch:
        batch.alter_column("team_id", existing_type=sa.String(length=64), server_default=None)
        batch.alter_column("environment", existing_type=sa.String(length=64), server_default=None)


def downgrade() -> None:
    op.execute("DELETE FROM publish_jobs WHERE target_environment_id IS NULL")
    with op.batch_alter_table("publish_jobs") as batch:
        batch.drop_constraint(_TARGET_FK, type_="foreignkey")
        batch.create_foreign_key(_TARGET_FK, "environments", ["target_environment_id"], ["id"])
        batch.alter_column("target_environment_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("notified_at")
        batch.drop_column("version")
        batch.drop_column("catalog")
        batch.drop_column("environment")
        batch.drop_column("team_id")
