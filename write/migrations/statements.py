"""Migrations written as plain SQL scripts run statement by statement."""

from alembic import op


def run_script(script: str) -> None:
    for statement in filter(str.strip, script.split(";")):
        op.execute(statement)
