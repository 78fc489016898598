"""Reading the metadata the source step names, after the ack: a URL, pasted text, or a Slack file.

A file picked in a ``file_input`` is downloaded from its ``url_private_download`` with the bot
token, only from Slack's own host (the token must not travel anywhere else) and never more than
the size cap. Every failure is a :class:`ProviderError` with one line the user can act on.
"""

from __future__ import annotations

from dataclasses import replace

import httpx

from handlers.wizard_steps import SourceLoad
from providers.base import MetadataSource, Provider, SourceError
from providers.model import Catalog

DOWNLOAD_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


async def download_slack_file(url: str, bot_token: str, *, max_bytes: int, name: str) -> bytes:
    """The bytes of a file shared with the app; ``url`` must already be known to be Slack's."""
    headers = {"Authorization": f"Bearer {bot_token}"}
    try:
        async with (
            httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise SourceError(
                    f"Slack answered {response.status_code} when downloading {name}; upload it again"
                )
            if response.headers.get("content-type", "").startswith("text/html"):
                # Slack serves its sign-in page (with 200) when the token may not read the file.
                raise SourceError(f"the app may not read {name}: is the files:read scope granted?")
            chunks: list[bytes] = []
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise SourceError(f"{name} is larger than {max_bytes // (1024 * 1024)} MB")
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise SourceError(f"downloading {name} from Slack took too long; try again") from None
    except httpx.HTTPError as error:
        raise SourceError(f"could not download {name} from Slack ({error.__class__.__name__})") from None
    return b"".join(chunks)


async def read_catalog(provider: Provider, load: SourceLoad, *, bot_token: str, max_bytes: int) -> Catalog:
    """Fetch or download what ``load`` names and let the provider read it."""
    source: MetadataSource = load.source
    if load.file is not None:
        data = await download_slack_file(load.file.url, bot_token, max_bytes=max_bytes, name=load.file.name)
        source = replace(source, data=data)
    return await provider.discover(source)
