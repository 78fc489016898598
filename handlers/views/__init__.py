"""Block Kit views: pure functions from state to the dicts Slack takes, testable without Slack."""
