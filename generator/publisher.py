"""The publisher: durable publish jobs (DESIGN.md section 1) and promotion to other environments.

A publish job moves ``queued -> generating -> building -> publishing -> published`` or ``failed``;
every transition is stored before the step's work starts, so a process killed at any point
resumes the job at its next start. Generating and building are pure (the same catalog, spec and
version give the same bytes), so a resumed job simply repeats them; publishing is one database
transaction that re-checks the job, so it happens once whatever crashes around it. The final
notification is claimed in the database before it is sent: at most one per job, even across
restarts, replicas and workers. A runner's job (:meth:`Publisher.run_job`) claims it in its slot
and sends it in the background: the notifier paces and Slack rate-limits its messages, and a
slot waiting for Slack builds nothing. When the notifier cannot send it yet (Slack's rate limits,
the network), the claim is given back and this process tries again in the background, waiting as
long as the notifier asks and longer each time, for up to :data:`NOTIFY_RETRY_FOR_S`; any
process's next start resumes it if this one stops first.

The wizard publishes only to development environments; other environments get a published
version byte for byte through :func:`deploy`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.ext.asyncio import AsyncSession

from generator.build import BuiltArtifact, build_sdist, build_wheel
from generator.errors import GenerationError
from generator.jobs import DEFAULT_STOP_GRACE_S, InProcessRunner, JobRunner, is_transient
from generator.package import GeneratedPackage, generate_package
from generator.selection import select
from generator.spec import IntegrationSpec
from providers.base import MetadataSource, ProviderError, get_provider
from providers.model import Catalog, catalog_from_dict, catalog_to_dict
from storage import (
    AccessGrants,
    AlreadyExists,
    Associations,
    AuditLog,
    Database,
    Deployments,
    Environments,
    Integrations,
    PublishJobs,
)
from storage.models import (
    PUBLISH_FINAL_STATES,
    Deployment,
    Environment,
    Integration,
    IntegrationVersion,
    PublishJob,
    utcnow,
)

log = logging.getLogger(__name__)

INITIAL_VERSION: Final = "0.1.0"
# A job interrupted this often (the process died each time) is failed rather than retried forever.
MAX_ATTEMPTS: Final = 5
# Publishes of one integration in other processes may take the version this job built.
_MAX_VERSION_RACES: Final = 3
# Test-only: seconds to pause after each state transition, so a test can kill the process mid-job.
STEP_DELAY_ENV: Final = "IB_TEST_PUBLISH_STEP_DELAY"
_INTERNAL_ERROR: Final = "publishing stopped on an internal error; the service log has the details"
_UNAVAILABLE: Final = "the database or the network kept failing while publishing; publish again"
CANCELLED: Final = "it was cancelled before it started; nothing was published"
_RELEASE = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
# A final notification the notifier could not send yet is tried again this long at most (a busy
# workspace's rate limits last minutes), after the base delay, then twice as long each time up to
# the longest delay, and never sooner than the notifier asked; after that, at the next start.
NOTIFY_RETRY_FOR_S: Final = 600.0
NOTIFY_RETRY_BASE_DELAY_S: Final = 5.0
NOTIFY_RETRY_MAX_DELAY_S: Final = 120.0


class PublishRefused(Exception):
    """A publish or deployment that the rules forbid; ``str()`` is one line the user can act on."""


class NotifyLater(Exception):
    """Raised by a notifier whose final notification was refused for now (a rate limit): the
    publisher tries it again in the background, no sooner than ``after`` seconds."""

    def __init__(self, reason: str, after: float) -> None:
        super().__init__(reason)
        self.after = after


class PublishNotifier(Protocol):
    """Tells the requester how a job goes (the Slack DM, or the log)."""

    async def progress(self, job: PublishJob, state: str) -> None:
        """``state`` is ``generating``, ``building`` or ``publishing``; may repeat after a restart."""

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        """Called once per job, again only after it raised. ``artifacts`` are (filename, bytes)
        of the wheel and sdist of a failed job when they were built (to install by hand), else
        empty. :class:`NotifyLater` (or a network error) has it called again later."""


def index_url(base_url: str, environment: str) -> str:
    """The PEP 503 index of ``environment`` (pip needs ``__token__:<runtime token>@`` added)."""
    return f"{base_url.rstrip('/')}/envs/{environment}/simple/"


def install_command(base_url: str, environment: str, module_name: str) -> str:
    """The ``pip install`` line for ``module_name`` from ``environment``'s index."""
    url = index_url(base_url, environment)
    scheme, separator, rest = url.partition("://")
    if separator:
        # a shell variable, so the line works as pasted once IB_RUNTIME_TOKEN holds the token
        url = f"{scheme}://__token__:$IB_RUNTIME_TOKEN@{rest}"
    return f"pip install --index-url {url} {module_name}"


def next_version(published: Collection[str], requested: str = INITIAL_VERSION) -> str:
    """The patch after the highest published version, or ``requested`` when that is higher
    (so an integration.json kept in git can ask for a minor or major bump)."""
    releases = [release for release in map(_release, published) if release is not None]
    if releases:
        major, minor, patch = max(releases)
        candidate = (major, minor, patch + 1)
    else:
        candidate = _release(INITIAL_VERSION) or (0, 1, 0)
    wanted = _release(requested)
    if wanted is not None and wanted > candidate:
        candidate = wanted
    return ".".join(map(str, candidate))


def _release(version: str) -> tuple[int, int, int] | None:
    match = _RELEASE.fullmatch(version)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


class LogNotifier:
    """The notifier when no Slack is connected: one log line per transition and per result."""

    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url

    async def progress(self, job: PublishJob, state: str) -> None:
        log.info("publish job %s (%s): %s", job.id, job.spec.get("module_name"), state)

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        if version is not None:
            log.info(
                "publish job %s finished: published %s %s to %s (sha256 %s); install with: %s",
                job.id,
                version.integration.module_name,
                version.version,
                job.environment,
                version.sha256,
                install_command(self.base_url, job.environment, version.integration.module_name),
            )
        else:
            log.warning("publish job %s finished: failed: %s", job.id, error)


def _encode_catalog(catalog: Catalog) -> bytes:
    return json.dumps(catalog_to_dict(catalog), separators=(",", ":")).encode("utf-8")


def _decode_catalog(data: bytes) -> Catalog:
    return catalog_from_dict(json.loads(data))


def _build(package: GeneratedPackage) -> list[BuiltArtifact]:
    return [build_wheel(package), build_sdist(package)]


def _step_delay() -> float:
    try:
        return max(0.0, float(os.environ.get(STEP_DELAY_ENV, "0") or 0))
    except ValueError:
        return 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Announcement:
    """A final notification this process claimed and is to send."""

    job: PublishJob
    version: IntegrationVersion | None
    artifacts: list[tuple[str, bytes]]


class _VersionTaken(Exception):
    """Another process published the version this job built; build the next one."""


class _KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield


async def _check_integration(
    session: AsyncSession, *, team_id: str, user_id: str, module_name: str, environment: Environment
) -> Integration | None:
    """The integration ``user_id`` may publish as ``module_name`` (None if new); else refuse."""
    integrations = Integrations(session)
    integration = await integrations.by_module(team_id, module_name)
    if integration is not None:
        if integration.owner_user_id != user_id:
            raise PublishRefused(
                f"module name {module_name} belongs to another integration in this workspace "
                f"(owned by <@{integration.owner_user_id}>); choose another module name"
            )
        if integration.open and await integrations.versions(integration):
            raise PublishRefused(
                f"{module_name} is an open integration: it was published once and Integration Builder "
                "never regenerates or republishes it"
            )
    await _check_index_name(session, team_id, module_name, environment)
    return integration


async def _check_index_name(
    session: AsyncSession, team_id: str, module_name: str, environment: Environment
) -> None:
    # Environments are shared by every workspace of the install, and so is their package index.
    for served in await Deployments(session).served(environment):
        if served.module_name == module_name and served.team_id != team_id:
            raise PublishRefused(
                f"the {environment.name} package index already serves a package named {module_name} "
                "for another workspace; choose another module name"
            )


async def _development_target(session: AsyncSession, environment: str) -> Environment:
    target = await Environments(session).get(environment)
    if target is None:
        raise PublishRefused(f"there is no environment named {environment!r}; see `ib env list`")
    if not target.development:
        raise PublishRefused(
            "the wizard publishes only to development environments; deploy a published version to "
            f"{environment} with `ib deploy` or /ib deploy"
        )
    return target


class Publisher:
    """Accepts publish requests and runs them as durable jobs (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        *,
        notifier: PublishNotifier | None = None,
        base_url: str = "",
        runner: JobRunner | None = None,
        notify_retry_base_delay: float = NOTIFY_RETRY_BASE_DELAY_S,
        notify_retry_for: float = NOTIFY_RETRY_FOR_S,
    ) -> None:
        self.database = database
        self.base_url = base_url
        # Public so that the Slack wiring, installed after the publisher, can swap in its DMs.
        self.notifier: PublishNotifier = notifier or LogNotifier(base_url)
        self._runner: JobRunner = runner or InProcessRunner(self.run_job, pending=self._pending)
        self._resumed = False
        self._locks = _KeyedLocks()
        # Runs of a job in this process, its final notification's background send included.
        self._executing: Counter[str] = Counter()
        # Wakes waiters of jobs that end in this process; forgotten when nobody waits.
        self._finished: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()
        self._built: dict[str, list[BuiltArtifact]] = {}
        self._step_delay = _step_delay()
        self._notify_retry_base_delay = notify_retry_base_delay
        self._notify_retry_for = notify_retry_for
        # Final notifications tried again in the background, by job id (kept until they end).
        self._announcing: dict[str, asyncio.Task[None]] = {}
        # First sends of final notifications that runners' jobs handed off (kept until they end).
        self._sending: set[asyncio.Task[None]] = set()

    # -- requests -------------------------------------------------------------------------

    async def submit(
        self,
        *,
        team_id: str,
        user_id: str,
        spec: IntegrationSpec,
        catalog: Catalog | None,
        environment: str = "dev",
        dedup_key: str,
        draft_id: str | None = None,
    ) -> PublishJob:
        """Queue a publish of ``spec`` to ``environment`` (a development environment).

        Idempotent on ``dedup_key``: a retried or double-clicked Publish gets the same job back.
        Raises :class:`PublishRefused` before anything is stored when the rules forbid it or the
        spec does not fit the catalog. Without ``catalog`` the spec's metadata URL is read again.
        """
        async with self.database.session() as session:
            existing = await PublishJobs(session).by_dedup_key(dedup_key)
            if existing is None:
                target = await _development_target(session, environment)
                await _check_integration(
                    session,
                    team_id=team_id,
                    user_id=user_id,
                    module_name=spec.module_name,
                    environment=target,
                )
        if existing is not None:
            self._runner.enqueue(existing.id)
            return existing
        if catalog is None:
            catalog = await self._read_metadata_again(spec)
        try:
            await asyncio.to_thread(select, catalog, dataclasses.replace(spec, version=INITIAL_VERSION))
        except GenerationError as error:
            raise PublishRefused(str(error)) from None
        encoded = await asyncio.to_thread(_encode_catalog, catalog)
        async with self.database.session() as session:
            jobs = PublishJobs(session)
            try:
                job = await jobs.create(
                    team_id=team_id,
                    requested_by=user_id,
                    environment=await _development_target(session, environment),
                    spec=spec.to_dict(),
                    catalog=encoded,
                    dedup_key=dedup_key,
                    draft_id=draft_id,
                )
            except AlreadyExists:
                found = await jobs.by_dedup_key(dedup_key)
                assert found is not None
                job = found
        self._runner.enqueue(job.id)
        return job

    async def _read_metadata_again(self, spec: IntegrationSpec) -> Catalog:
        source = spec.source
        if source.kind != "url" or not source.location:
            raise PublishRefused(
                "the metadata this spec was made from cannot be read again (it was a file or pasted "
                "text); give the metadata again"
            )
        try:
            provider = get_provider(spec.provider)
            return await provider.discover(
                MetadataSource(kind="url", location=source.location, options=dict(source.options))
            )
        except ProviderError as error:
            raise PublishRefused(f"cannot read the metadata again from {source.location}: {error}") from None

    # -- the runner -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the runner and resume every job a previous process left unfinished or unannounced.

        A database that does not answer now is tried again by the runner's poll: the service
        starts anyway and reports itself not ready instead.
        """
        self._resumed = False
        await self._runner.start()
        try:
            pending = await self._pending()
        except Exception as error:
            log.warning("cannot resume publish jobs yet: %s", error.__class__.__name__)
            return
        for job_id in pending:
            self._runner.enqueue(job_id)

    async def stop(self) -> None:
        """Stop the runner; final notifications being sent get :data:`DEFAULT_STOP_GRACE_S` to go
        out. Those still unsent, or waiting to be sent again, are stopped: their claims are given
        back, so the next start of any process sends them."""
        await self._runner.stop()
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=DEFAULT_STOP_GRACE_S)
        stopping = [*self._sending, *self._announcing.values()]
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)

    async def cancel(self, job_id: str) -> PublishJob:
        """Cancel a job no runner started yet: it fails as cancelled, never runs, and its final
        notification is sent from here. A running job is not stopped half-way (it ends published
        or failed on its own); that, an unknown or a finished job raise :class:`PublishRefused`
        with one line for the user, and nothing changes."""
        job = await self._job(job_id)
        if job is None:
            raise PublishRefused(f"there is no publish job {job_id}")
        if job.state in PUBLISH_FINAL_STATES:
            raise PublishRefused(f"publish job {job_id} is {job.state} already; nothing changed")
        running = PublishRefused(
            f"publish job {job_id} is running ({job.state}); a running job is not stopped half-way: "
            "it ends published or failed on its own"
        )
        if job.state != "queued" or job.attempts > 0 or not await self._runner.cancel(job_id):
            raise running
        async with self.database.session() as session:
            # Conditional, like every transition: a runner claiming the job meanwhile wins.
            withdrawn = await session.execute(
                update(PublishJob)
                .where(PublishJob.id == job_id, PublishJob.state == "queued", PublishJob.attempts == 0)
                .values(state="failed", error=CANCELLED, finished_at=utcnow(), updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        if cast(CursorResult[Any], withdrawn).rowcount != 1:
            self._runner.enqueue(job_id)  # it started elsewhere: this runner must not lose it
            raise running
        await self.execute(job_id)  # sends the final notification: cancelled
        cancelled = await self._job(job_id)
        assert cancelled is not None
        return cancelled

    async def _job(self, job_id: str) -> PublishJob | None:
        async with self.database.session() as session:
            return await PublishJobs(session).get(job_id)

    # A timeout parameter (not the caller's asyncio.timeout) because callers wait for a
    # job, not for this call: the wait also looks at the database for jobs of other processes.
    async def wait(self, job_id: str, timeout: float = 60) -> PublishJob:  # noqa: ASYNC109
        """The job once it is published or failed (and, when it runs in this process, announced, or
        left to the background retry of its notification); :class:`TimeoutError` after ``timeout``
        seconds."""
        event = self._finished.get(job_id)
        if event is None:
            event = self._finished[job_id] = asyncio.Event()
        async with asyncio.timeout(timeout):
            while True:
                async with self.database.session() as session:
                    job = await PublishJobs(session).get(job_id)
                if job is None:
                    raise LookupError(f"no publish job {job_id}")
                # A job run here is done once its final notification went out, too.
                if job.state in PUBLISH_FINAL_STATES and job_id not in self._executing:
                    return job
                # Jobs run by another process end without this event: look again now and then.
                try:
                    async with asyncio.timeout(1.0):
                        await event.wait()
                except TimeoutError:
                    pass

    async def _pending(self) -> list[str]:
        """Jobs for the runner: at first everything left over, later what other processes queued."""
        async with self.database.session() as session:
            jobs = PublishJobs(session)
            if self._resumed:
                return await jobs.queued()
            pending = await jobs.unfinished() + await jobs.unnotified()
        self._resumed = True
        if pending:
            log.info("resuming %d publish job(s)", len(pending))
        return pending

    # -- one job --------------------------------------------------------------------------

    async def execute(self, job_id: str) -> None:
        """Run one job to its end (or resume it) and send its final notification once, returning
        when it was sent (or left to the background retry). Safe to call again for a finished job."""
        announcement = await self._execute(job_id)
        if announcement is not None:
            await self._offer(announcement)

    async def run_job(self, job_id: str) -> None:
        """What a job runner (the in-process one, an ``ib worker``) calls: :meth:`execute`, except
        that it returns once the final notification is claimed, and sends it in the background;
        :meth:`wait` still waits for it, and :meth:`stop` lets it finish."""
        announcement = await self._execute(job_id)
        if announcement is not None:
            self._enter(job_id)  # before the caller's run ends: waiters never see a gap
            task = asyncio.create_task(self._send_in_background(announcement), name=f"publish-dm-{job_id}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send_in_background(self, announcement: _Announcement) -> None:
        try:
            await self._offer(announcement)
        finally:
            self._leave(announcement.job.id)

    async def _execute(self, job_id: str) -> _Announcement | None:
        """Run one job to its end (or resume it); its final notification to send, when this call
        claimed it."""
        self._enter(job_id)
        try:
            async with self.database.session() as session:
                job = await PublishJobs(session).get(job_id)
            if job is None:
                return None
            if job.state not in PUBLISH_FINAL_STATES:
                async with self._locks.hold((job.team_id, str(job.spec.get("module_name")))):
                    await self._run(job_id)
            return await self._claim_announcement(job_id)
        finally:
            self._leave(job_id)

    def _enter(self, job_id: str) -> None:
        self._executing[job_id] += 1

    def _leave(self, job_id: str) -> None:
        self._executing[job_id] -= 1
        if self._executing[job_id] > 0:
            return
        del self._executing[job_id]
        event = self._finished.get(job_id)
        if event is not None:
            event.set()

    async def _run(self, job_id: str) -> None:
        async with self.database.session() as session:
            jobs = PublishJobs(session)
            job = await jobs.get(job_id)
            if job is None or job.state in PUBLISH_FINAL_STATES:
                return
            if job.attempts >= MAX_ATTEMPTS:
                await jobs.advance(
                    job_id,
                    "failed",
                    error=f"publishing was interrupted {job.attempts} times; publish again",
                )
                return
            if not await jobs.claim(job):
                return  # another runner took it since it was read
        try:
            await self._steps(job)
        except (GenerationError, PublishRefused) as error:
            await self._fail(job_id, str(error))
        except Exception as error:
            # The claim above counted this run: job.attempts + 1 of MAX_ATTEMPTS.
            if is_transient(error) and job.attempts + 1 < MAX_ATTEMPTS:
                raise  # the runner runs the job again later; it resumes from its stored state
            log.exception("publish job %s failed", job_id)
            await self._fail(job_id, _UNAVAILABLE if is_transient(error) else _INTERNAL_ERROR)

    async def _steps(self, job: PublishJob) -> None:
        async with self.database.session() as session:
            catalog_data = await PublishJobs(session).catalog(job.id)
        if catalog_data is None:
            raise PublishRefused("the job lost its metadata; publish again")
        catalog = await asyncio.to_thread(_decode_catalog, catalog_data)
        spec = IntegrationSpec.from_dict(job.spec)
        for _ in range(_MAX_VERSION_RACES):
            version = await self._next_version(job.team_id, spec)
            if not await self._advance(job.id, "generating", version=version):
                return
            package = await asyncio.to_thread(
                generate_package, catalog, dataclasses.replace(spec, version=version)
            )
            if not await self._advance(job.id, "building"):
                return
            artifacts = await asyncio.to_thread(_build, package)
            self._built[job.id] = artifacts
            if not await self._advance(job.id, "publishing"):
                return
            try:
                await self._publish(job.id, package, artifacts)
            except _VersionTaken:
                continue
            return
        raise PublishRefused(
            f"other publishes of {spec.module_name} kept taking the next version; publish again"
        )

    async def _next_version(self, team_id: str, spec: IntegrationSpec) -> str:
        async with self.database.session() as session:
            integrations = Integrations(session)
            integration = await integrations.by_module(team_id, spec.module_name)
            published = [v.version for v in await integrations.versions(integration)] if integration else []
        return next_version(published, spec.version)

    async def _advance(self, job_id: str, state: str, **values: object) -> bool:
        """Store the transition and tell the notifier; False when the job finished meanwhile."""
        async with self.database.session() as session:
            jobs = PublishJobs(session)
            if not await jobs.advance(job_id, state, **values):
                return False
            job = await jobs.get(job_id)
        assert job is not None
        try:
            await self.notifier.progress(job, state)
        except Exception:  # a lost progress message must not cost the publish
            log.exception("publish job %s: progress notification failed", job_id)
        if self._step_delay:
            await asyncio.sleep(self._step_delay)
        return True

    async def _publish(
        self, job_id: str, package: GeneratedPackage, artifacts: Sequence[BuiltArtifact]
    ) -> None:
        """Store the version, deploy it and finish the job, all in one transaction."""
        wheel, sdist = artifacts
        spec = package.spec
        async with self.database.session() as session:
            jobs = PublishJobs(session)
            job = await jobs.lock(job_id)
            if job is None or job.state in PUBLISH_FINAL_STATES:
                return
            target = (
                await session.get(Environment, job.target_environment_id)
                if job.target_environment_id is not None
                else None
            )
            if target is None:
                raise PublishRefused(
                    f"environment {job.environment} was removed while publishing; nothing was published"
                )
            integrations = Integrations(session)
            integration = await _check_integration(
                session,
                team_id=job.team_id,
                user_id=job.requested_by,
                module_name=spec.module_name,
                environment=target,
            )
            if integration is None:
                try:
                    integration = await integrations.create(
                        team_id=job.team_id,
                        module_name=spec.module_name,
                        application_name=spec.application_name,
                        provider=spec.provider,
                        owner_user_id=job.requested_by,
                        spec=spec.to_dict(),
                        open=spec.open,
                    )
                except AlreadyExists:
                    raise _VersionTaken from None
            published = [v.version for v in await integrations.versions(integration)]
            if next_version(published, IntegrationSpec.from_dict(job.spec).version) != package.version:
                raise _VersionTaken
            integration.application_name = spec.application_name
            integration.open = spec.open
            integration.spec = spec.to_dict()
            try:
                version = await integrations.add_version(
                    integration,
                    version=package.version,
                    wheel_filename=wheel.filename,
                    wheel=wheel.data,
                    sdist_filename=sdist.filename,
                    sdist=sdist.data,
                    spec=spec.to_dict(),
                    created_by=job.requested_by,
                )
            except AlreadyExists:
                raise _VersionTaken from None
            await Deployments(session).deploy(version, target, deployed_by=job.requested_by)
            await Associations(session).ensure(integration.id, target, updated_by=job.requested_by)
            await AuditLog(session).record(
                actor=job.requested_by,
                action="integration.published",
                subject_type="integration",
                subject_id=integration.id,
                details={
                    "version": version.version,
                    "environment": target.name,
                    "sha256": version.sha256,
                    "publish_job": job_id,
                },
            )
            await jobs.advance(
                job_id, "published", integration_id=integration.id, result_version_id=version.id
            )
        self._built.pop(job_id, None)

    async def _fail(self, job_id: str, error: str) -> None:
        async with self.database.session() as session:
            await PublishJobs(session).advance(job_id, "failed", error=error)

    async def _announce(self, job_id: str) -> float | None:
        """Send the final notification unless it was sent already (here or by another process);
        the seconds to wait before trying again when it could not be sent for now, else None."""
        announcement = await self._claim_announcement(job_id)
        return None if announcement is None else await self._send(announcement)

    async def _offer(self, announcement: _Announcement) -> None:
        """Send a claimed final notification; if it cannot go now, try it again in the background."""
        later = await self._send(announcement)
        if later is not None:
            self._announce_later(announcement.job.id, later)

    async def _claim_announcement(self, job_id: str) -> _Announcement | None:
        """The final notification of a finished job, claimed by this call; None when it was
        claimed already (here or by another process)."""
        async with self.database.session() as session:
            jobs = PublishJobs(session)
            if not await jobs.claim_notification(job_id):
                return None
            job = await jobs.get(job_id)
            assert job is not None
            version = (
                await session.get(IntegrationVersion, job.result_version_id)
                if job.result_version_id is not None
                else None
            )
        built = self._built.pop(job_id, None)
        artifacts: list[tuple[str, bytes]] = []
        if job.state == "failed":
            try:
                if built is None:
                    built = await self._rebuild(job)
            except BaseException:
                await self._release(job_id)
                raise
            artifacts = [(artifact.filename, artifact.data) for artifact in built]
        return _Announcement(job, version, artifacts)

    async def _release(self, job_id: str) -> None:
        """Unclaim a final notification, so that whoever tries next sends it."""
        async with self.database.session() as session:
            await PublishJobs(session).release_notification(job_id)

    async def _send(self, announcement: _Announcement) -> float | None:
        """Send a claimed final notification; the seconds to wait before trying again when it could
        not be sent for now (it is unclaimed then), else None."""
        job_id = announcement.job.id
        try:
            await self.notifier.finished(
                announcement.job, announcement.version, announcement.job.error, announcement.artifacts
            )
        except BaseException as error:
            # Unclaimed, so that whoever tries next sends it: this process below, or a next start.
            await self._release(job_id)
            if not isinstance(error, Exception):
                raise
            if isinstance(error, NotifyLater):
                return error.after
            if is_transient(error):
                return 0.0
            log.exception(
                "publish job %s: final notification failed; it is retried at the next start", job_id
            )
        return None

    def _announce_later(self, job_id: str, after: float) -> None:
        running = self._announcing.get(job_id)
        if running is not None and not running.done():
            return  # that one tries again already
        task = asyncio.create_task(self._retry_announce(job_id, after), name=f"publish-announce-{job_id}")
        self._announcing[job_id] = task
        task.add_done_callback(lambda done: self._forget_announcing(job_id, done))

    def _forget_announcing(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._announcing.get(job_id) is task:
            del self._announcing[job_id]

    async def _retry_announce(self, job_id: str, after: float) -> None:
        """Try the final notification again until it is sent, with backoff, for a bounded time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._notify_retry_for
        delay = self._notify_retry_base_delay
        later: float | None = after
        while later is not None:
            pause = max(later, delay)
            if loop.time() + pause > deadline:
                log.error(
                    "publish job %s: final notification still not sent after %g s; it is retried "
                    "at the next start",
                    job_id,
                    self._notify_retry_for,
                )
                return
            log.warning("publish job %s: final notification not sent yet; tried again in %g s", job_id, pause)
            await asyncio.sleep(pause)
            delay = min(delay * 2, NOTIFY_RETRY_MAX_DELAY_S)
            try:
                later = await self._announce(job_id)
            except Exception as error:  # the claim itself failed: nothing was sent
                if not is_transient(error):
                    log.exception("publish job %s: final notification failed", job_id)
                    return
                later = 0.0

    async def _rebuild(self, job: PublishJob) -> list[BuiltArtifact]:
        """The artifacts of a failed job that a previous process built (the same bytes again)."""
        if job.version is None:
            return []
        async with self.database.session() as session:
            catalog_data = await PublishJobs(session).catalog(job.id)
        if catalog_data is None:
            return []
        try:
            catalog = await asyncio.to_thread(_decode_catalog, catalog_data)
            spec = dataclasses.replace(IntegrationSpec.from_dict(job.spec), version=job.version)
            package = await asyncio.to_thread(generate_package, catalog, spec)
        except GenerationError:
            return []
        return await asyncio.to_thread(_build, package)


async def deploy(
    database: Database,
    *,
    team_id: str,
    module_name: str,
    environment: str,
    version: str | None = None,
    actor: str,
    admins: Collection[str] = (),
) -> Deployment:
    """Promote a published version (the newest unless ``version`` is given) to ``environment``.

    The same bytes (and sha256) are served by the target's index. ``actor`` needs the deployer
    role there (``admins``, the service's IB_ADMINS, have every role). The integration's
    association in the target is created empty if it has none, for the owner to fill.
    Raises :class:`PublishRefused` with one line when the rules forbid it.
    """
    async with database.session() as session:
        target = await Environments(session).get(environment)
        if target is None:
            raise PublishRefused(f"there is no environment named {environment!r}; see `ib env list`")
        if not await AccessGrants(session, admins).has_role(actor, "deployer", environment):
            raise PublishRefused(
                f"<@{actor}> may not deploy to {environment}: that needs the deployer role "
                f"(`ib access grant {actor} deployer {environment}`)"
            )
        integrations = Integrations(session)
        integration = await integrations.by_module(team_id, module_name)
        if integration is None:
            raise PublishRefused(f"there is no integration named {module_name} in this workspace")
        versions = await integrations.versions(integration)
        if not versions:
            raise PublishRefused(f"{module_name} has no published version yet; publish it first")
        chosen = versions[0] if version is None else await integrations.get_version(integration, version)
        if chosen is None:
            known = ", ".join(v.version for v in versions[:5])
            raise PublishRefused(f"{module_name} has no version {version} (latest: {known})")
        await _check_index_name(session, team_id, module_name, target)
        deployment = await Deployments(session).deploy(chosen, target, deployed_by=actor)
        await Associations(session).ensure(integration.id, target, updated_by=actor)
        await AuditLog(session).record(
            actor=actor,
            action="integration.deployed",
            subject_type="integration",
            subject_id=integration.id,
            details={"version": chosen.version, "environment": target.name, "sha256": chosen.sha256},
        )
    return deployment
