"""`ib jobs`: list the publish jobs, cancel one that has not started.

A job is cancelled only while it is queued: it then never runs, nothing is published, and the
requester's publish DM says so (sent from here with the Slack settings of ``ib serve``; without
them the cancellation is only printed). A running job is not stopped half-way: it ends published
or failed on its own. The same holds with the embedded runner and with ``ib worker`` processes.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select

from bot.commands import CommandError
from bot.commands.env import print_table, run_on_database
from bot.config import Settings
from bot.slack_app import publish_notifier
from generator.publisher import LogNotifier, Publisher, PublishRefused
from generator.workers import ProcrastinateRunner, uses_task_queue
from storage import Database
from storage.models import PublishJob

DEFAULT_LIMIT = 20


def _limit(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a number of jobs (1 or more), not {value!r}")
    return int(value)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "jobs",
        help="list publish jobs, or cancel one that has not started",
        description="Publish jobs are queued by the wizard's Publish and `ib publish`, and run by "
        "`ib serve` (or `ib worker` on PostgreSQL).",
    )
    actions = parser.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="queued, running and failed publish jobs, newest first")
    listing.add_argument("--all", action="store_true", help="published jobs too")
    listing.add_argument(
        "--limit", type=_limit, default=DEFAULT_LIMIT, help=f"at most this many (default {DEFAULT_LIMIT})"
    )
    listing.set_defaults(handler=run_list)

    cancel = actions.add_parser(
        "cancel",
        help="cancel a queued publish job",
        description="Cancel a publish job that is still queued: it never runs, nothing is published, "
        "and its requester's publish DM says it was cancelled. A running job cannot be cancelled: it "
        "ends published or failed on its own.",
    )
    cancel.add_argument("job_id", metavar="JOB_ID", help="the job's id, from `ib jobs list`")
    cancel.set_defaults(handler=run_cancel)


def run_list(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> list[tuple[str, ...]]:
        query = select(PublishJob).order_by(PublishJob.created_at.desc()).limit(args.limit)
        if not args.all:
            query = query.where(PublishJob.state != "published")
        async with database.reader() as session:
            jobs = list(await session.scalars(query))
        return [
            (
                job.id,
                job.state,
                str(job.spec.get("module_name", "")),
                job.environment,
                job.requested_by,
                job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                job.error or "",
            )
            for job in jobs
        ]

    rows = run_on_database(work)
    if not rows:
        print("no publish jobs" if args.all else "no queued, running or failed publish jobs")
        return 0
    print_table(("ID", "STATE", "MODULE", "ENV", "REQUESTED BY", "QUEUED AT (UTC)", "ERROR"), rows)
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> PublishJob:
        # Only the queue is opened (procrastinate's, to withdraw the job from it): the embedded
        # runner is not started, so no job runs in this process.
        queue = ProcrastinateRunner(database) if uses_task_queue(database) else None
        async with publish_notifier(settings, database) as slack:
            publisher = Publisher(
                database,
                notifier=slack or LogNotifier(settings.public_base_url),
                base_url=settings.public_base_url,
                runner=queue,
            )
            if queue is not None:
                await queue.start()
            try:
                return await publisher.cancel(args.job_id)
            except PublishRefused as refused:
                raise CommandError(str(refused)) from None
            finally:
                if queue is not None:
                    await queue.stop()

    job = run_on_database(work)
    print(
        f"cancelled publish job {job.id} ({job.spec.get('module_name')} to {job.environment}): "
        "it never runs; nothing was published"
    )
    return 0
