"""Shared pytest configuration: fixture modules live in tests/fixtures/, one per peer or concern."""

pytest_plugins = [
    "tests.fixtures.corpora",
    "tests.fixtures.slack",
    "tests.fixtures.db",
    "tests.fixtures.cap",
    "tests.fixtures.generated",
    "tests.fixtures.publish",
    "tests.fixtures.connections",
    "tests.fixtures.salesforce",
    "tests.fixtures.microsoft",
]
