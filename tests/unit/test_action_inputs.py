"""The action's inputs and runner variables, parsed from the environment the runner gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_e2b.errors import ConfigError
from claude_e2b.github.inputs import ActionInputs, RunnerEnv, read_input, split_list

RUNNER = {
    "GITHUB_API_URL": "https://ghe.example.test/api/v3/",
    "GITHUB_SERVER_URL": "https://ghe.example.test",
    "GITHUB_REPOSITORY": "octo/app",
    "GITHUB_EVENT_NAME": "workflow_dispatch",
    "GITHUB_EVENT_PATH": "/tmp/event.json",
    "GITHUB_WORKSPACE": "/work/app",
    "GITHUB_OUTPUT": "/tmp/out",
    "GITHUB_RUN_ID": "42",
    "RUNNER_TEMP": "/tmp/runner",
}


def test_both_spellings_of_an_input_are_read():
    """INPUT_TIMEOUT_MINUTES (action.yml's env) and INPUT_TIMEOUT-MINUTES both work."""
    assert read_input({"INPUT_TIMEOUT_MINUTES": " 30 "}, "timeout-minutes") == "30"
    assert read_input({"INPUT_TIMEOUT-MINUTES": "45"}, "timeout-minutes") == "45"
    assert read_input({}, "timeout-minutes") == ""


def test_empty_inputs_mean_not_given():
    """An input left at its empty default gives None, so the plan's value wins."""
    inputs = ActionInputs.from_env({"INPUT_PLAN": "plans/a.md", "INPUT_MODEL": ""})
    assert inputs.plan == "plans/a.md"
    assert inputs.model is None
    assert inputs.timeout_minutes is None
    assert inputs.draft is None
    assert inputs.sandbox == "e2b"
    assert inputs.comment_command == "/claude-e2b run"
    assert inputs.sign_commits is False


def test_values_are_parsed():
    """Numbers, booleans, lists and choices become typed values."""
    inputs = ActionInputs.from_env(
        {
            "INPUT_TIMEOUT_MINUTES": "12.5",
            "INPUT_BUDGET_USD": "3",
            "INPUT_MAX_TURNS": "20",
            "INPUT_DRAFT": "True",
            "INPUT_SIGN_COMMITS": "yes",
            "INPUT_LABELS": "bot, nightly\nchore",
            "INPUT_REVIEWERS": "alice",
            "INPUT_SANDBOX": "local",
            "INPUT_KEY_INJECTION": "proxy",
        }
    )
    assert (inputs.timeout_minutes, inputs.budget_usd, inputs.max_turns) == (12.5, 3.0, 20)
    assert inputs.draft is True
    assert inputs.sign_commits is True
    assert inputs.labels == ("bot", "nightly", "chore")
    assert inputs.reviewers == ("alice",)
    assert (inputs.sandbox, inputs.key_injection) == ("local", "proxy")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TIMEOUT_MINUTES", "ten", "timeout-minutes must be a number"),
        ("TIMEOUT_MINUTES", "-5", "greater than 0"),
        ("BUDGET_USD", "nan", "budget-usd"),
        ("MAX_TURNS", "2.5", "max-turns must be a whole number"),
        ("DRAFT", "maybe", "draft must be true or false"),
        ("SANDBOX", "docker", "sandbox must be one of e2b, local"),
        ("KEY_INJECTION", "header", "key-injection must be one of env, proxy"),
    ],
)
def test_bad_input_names_the_input_and_shows_yaml(name, value, words):
    """A bad value is a ConfigError that names the input and shows the YAML to write."""
    with pytest.raises(ConfigError) as caught:
        ActionInputs.from_env({f"INPUT_{name}": value})
    assert words in caught.value.message
    assert caught.value.hint is not None
    assert "with:" in caught.value.hint


def test_secrets_are_the_given_secret_inputs():
    """secrets() lists the given keys and tokens only."""
    inputs = ActionInputs.from_env({"INPUT_ANTHROPIC_API_KEY": "sk-1", "INPUT_GITHUB_TOKEN": "t"})
    assert inputs.secrets() == ("sk-1", "t")


def test_split_list_drops_empty_items():
    """Commas and newlines separate; blanks vanish."""
    assert split_list(" a,,b ,\n\n c ") == ("a", "b", "c")


def test_runner_env_reads_enterprise_urls():
    """API and server URLs come from the runner, so Enterprise Server works; the run link too."""
    env = RunnerEnv.from_env(RUNNER)
    assert env.api_url == "https://ghe.example.test/api/v3"
    assert env.run_url == "https://ghe.example.test/octo/app/actions/runs/42"
    assert env.workspace == Path("/work/app")
    assert env.step_summary is None


def test_runner_env_outside_actions_says_what_to_do():
    """Without the runner's variables the error says to use the command instead."""
    with pytest.raises(ConfigError) as caught:
        RunnerEnv.from_env({})
    assert "GitHub Actions" in caught.value.message
    assert caught.value.hint is not None
    assert "claude-e2b run" in caught.value.hint
