"""The wizard behind a load balancer that does not pin users: two `ib serve` replicas and two
`ib worker` processes on one PostgreSQL database, Slack played by the strict fake.

Any replica answers any request: one journey whose requests alternate between the replicas
publishes once, on a worker, with one DM; and a replica that answered earlier steps, when the
draft has since moved on (and its metadata was read again) on the other replica, answers from the
draft as it is now, never from what it saw before.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.db import POSTGRES_URL, throwaway_postgres_database
from tests.journeys.documents import LIBRARY_V4
from tests.journeys.publishing import final_dm, readable, states, walk_to_review
from tests.journeys.wizard_user import WizardUser
from tests.scale.balancer import Replicated, replicated
from tests.scale.deployment import scalar
from tests.slack import DEVELOPER

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="several replicas need PostgreSQL: set IB_TEST_POSTGRES_URL"),
]
RUNS = re.compile(r"publish job (\S+) runs here")
# The same service after a change: Books became Magazines.
MAGAZINES_V4 = LIBRARY_V4.replace('EntitySet Name="Books"', 'EntitySet Name="Magazines"')


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with throwaway_postgres_database(POSTGRES_URL) as url:
        yield url


@pytest.fixture
async def service(tmp_path: Path, postgres_url: str) -> AsyncIterator[Replicated]:
    async with replicated(tmp_path, postgres_url, replicas=2, workers=2) as running:
        await running.grant_developer(DEVELOPER.id)
        yield running


async def test_a_journey_alternating_between_replicas_publishes_once_on_a_worker(
    service: Replicated, postgres_url: str
) -> None:
    user = WizardUser(service.driver, service.fake)
    await walk_to_review(user, "library_scale")
    await user.submit()
    await user.wait_step("publishing")

    published = await final_dm(service.fake, DEVELOPER, "library_scale")
    sent_to = service.driver.sent_to
    assert sent_to[:4] == [0, 1, 0, 1] and set(sent_to) == {0, 1}  # every other request, either replica
    assert published.text is not None and published.text.startswith("Published library_scale 0.1.0")
    assert states(published)[-1] == "published"
    finals = [m for m in service.fake.messages_for(DEVELOPER.id) if "library_scale" in (m.text or "")]
    assert finals == [published]  # one DM, edited in place
    assert "pip install" in readable(published)

    assert scalar(postgres_url, "SELECT count(*) FROM integration_versions") == 1
    assert scalar(postgres_url, "SELECT count(*) FROM publish_jobs") == 1
    assert scalar(postgres_url, "SELECT state FROM publish_jobs") == "published"
    assert scalar(postgres_url, "SELECT status FROM drafts") == "published"
    logs = service.logs()
    runs = {name: RUNS.findall(log) for name, log in logs.items() if RUNS.search(log)}
    job_id = scalar(postgres_url, "SELECT id FROM publish_jobs")
    assert list(runs.values()) == [[job_id]], logs  # run once, by one process
    assert set(runs) <= {worker.folder.name for worker in service.workers}, logs
    assert all("Traceback" not in log for log in logs.values()), logs


async def test_a_replica_that_saw_older_steps_answers_from_the_draft_as_it_is_now(
    service: Replicated, postgres_url: str
) -> None:
    user = WizardUser(service.driver, service.fake)
    driver = service.driver
    with driver.to(0):  # replica 0 walks the user up to the settings, with the first metadata
        await user.start()
        await user.choose_provider("sap-odata")
        await user.give_source(metadata_text=LIBRARY_V4)
        await user.pick_objects(read_write=["Books"], read_only=["Authors"])
        await user.wait_step("settings")
    with driver.to(1):  # replica 1: back to the source, the changed metadata, other objects
        await user.back()
        await user.wait_step("objects")
        await user.back()
        await user.give_source(metadata_text=MAGAZINES_V4)
        await user.wait_step("objects")
    with driver.to(0):
        found = await user.search("objects_rw", "")
    assert sorted(found) == ["Authors", "Magazines"]  # the metadata read on replica 1, not the first one
    with driver.to(1):
        await user.pick_objects(read_write=["Magazines"])
        await user.wait_step("settings")
    with driver.to(0):  # replica 0 last saw this step with Books and Authors chosen
        await user.fill_settings(application_name="Periodicals", module_name="periodicals")
        await user.wait_step("review")

    assert "Magazines" in user.text and "Books" not in user.text, user.text
    assert scalar(postgres_url, "SELECT step FROM drafts WHERE status = 'open'") == "review"
    logs = service.logs()
    assert all("Traceback" not in log for log in logs.values()), logs
