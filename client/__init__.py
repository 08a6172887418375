"""ArtForge client: a Python SDK and the ``artforge`` command line.

It speaks only HTTP to the API and imports no server code (``api``, ``workers``, ``shared``):
it is its own distribution, ``artforge-client`` (``client/pyproject.toml``), needing only
requests and tqdm.

    from client import ArtForgeClient, load_config

    client = ArtForgeClient.from_config(load_config())
    upload = client.upload("photo.jpg")
    job = client.submit("style_transfer", params={"style": "starry-swirl"}, inputs={"content": upload["id"]})
    client.download(client.wait(job["id"]), "out/")
"""

from client.config import ClientConfig, ConfigError, load_config
from client.sdk import ApiError, ArtForgeClient, ArtForgeError, JobTimeout, ServiceUnreachable

__all__ = [
    "ApiError",
    "ArtForgeClient",
    "ArtForgeError",
    "ClientConfig",
    "ConfigError",
    "JobTimeout",
    "ServiceUnreachable",
    "load_config",
]
