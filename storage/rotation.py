"""``ib keys rotate``: re-encrypt every stored secret with the first key.

Runs in one unit of work, so either every secret is re-encrypted or (when one does not open with
the configured keys) none is, and the old key can be dropped only after a successful run.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from storage.database import Database
from storage.errors import SecretDecryptionError
from storage.models import encrypted_columns
from storage.secrets import SecretBox


async def rotate_secrets(database: Database, box: SecretBox) -> int:
    """Re-encrypt every value of every encrypted column; return how many values were rewritten."""
    rewritten = 0
    async with database.session() as session:
        for column in encrypted_columns():
            table = column.table
            (key_column,) = table.primary_key.columns
            # Re-encryption is not an edit: keep "updated_at"-style columns as they are.
            unchanged: dict[str, Any] = {c.name: c for c in table.columns if c.onupdate is not None}
            rows = await session.execute(select(key_column, column).where(column.is_not(None)))
            for key, token in rows.all():
                try:
                    rotated = box.rotate(token)
                except SecretDecryptionError:
                    raise SecretDecryptionError(
                        f"the secret in {table.name} #{key} does not open with the configured keys; "
                        "nothing was re-encrypted"
                    ) from None
                await session.execute(
                    update(table).where(key_column == key).values({column.name: rotated, **unchanged})
                )
                rewritten += 1
    return rewritten
