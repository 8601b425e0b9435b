"""Fixtures for the tests against the real Supabase Storage server (tests/support/storage_kit.py):
the server, once per session; a bucket of each test's own; Supabase settings; the fault proxy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from loader.settings import Settings
from tests.support import storage_kit
from tests.support.faultproxy import FaultProxy
from tests.support.storage_kit import StorageServer, supabase_settings


@pytest.fixture(scope="session")
def storage_server(admin_dsn: str, tmp_path_factory: pytest.TempPathFactory,
                   pytestconfig: pytest.Config) -> Iterator[StorageServer]:
    """The real Storage server, built (cached) and started once per test run; skipped, saying why,
    where the kit is absent."""
    if storage_kit.kit() is None:
        pytest.skip(storage_kit.absent())
    for server in storage_kit.serve(admin_dsn, tmp_path_factory.mktemp("storage")):
        line = f"supabase storage server: {server.version} at {server.storage_url}"
        reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # in the test log, whatever the capture mode
                reporter.write_line(line)
        yield server


@pytest.fixture
def bucket_name() -> str:
    """A bucket name of this test's own (the bucket itself is created by the first load)."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def supa(settings: Settings, storage_server: StorageServer, bucket_name: str) -> Settings:
    """Load settings for the Supabase backend against the real server, with a bucket of this test's own."""
    return supabase_settings(settings, storage_server.url, storage_server.key, bucket_name)


@pytest.fixture
def fault_proxy(storage_server: StorageServer) -> Iterator[FaultProxy]:
    """A fault-injecting proxy straight in front of the real server (tests.support.faultproxy)."""
    with FaultProxy(storage_server.storage_url) as proxy:
        yield proxy
