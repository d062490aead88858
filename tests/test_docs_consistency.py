"""action.yml, README.md and the code must agree on every input, output and configuration key."""

from __future__ import annotations

import re

import yaml

from runner.config import ExecutionSettings, Hypothesis, RunnerConfig

from .conftest import REPO_ROOT

ACTION = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
README = (REPO_ROOT / "README.md").read_text()
# The action face: runner/action/ (dispatch, one mode_<mode>.py per mode, what the modes share).
ACTION_CODE = "\n".join(p.read_text() for p in sorted((REPO_ROOT / "runner" / "action").glob("*.py")))


def _table_names(heading: str) -> list[str]:
    """First-column names (`name`) of the Markdown table under ``### heading``."""
    section = README.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)


def test_every_input_is_documented_and_read() -> None:
    declared = list(ACTION["inputs"])
    assert _table_names("Inputs") == declared
    read = set(re.findall(r'get_(?:input|int_input|float_input|bool_input)\("([a-z0-9-]+)"', ACTION_CODE))
    assert read == set(declared)
    for name, spec in ACTION["inputs"].items():
        assert spec.get("description"), name
        assert re.fullmatch(r"[a-z0-9-]+", name), name  # act and GitHub map these names alike


def test_every_output_is_documented_and_written() -> None:
    declared = list(ACTION["outputs"])
    assert _table_names("Outputs") == declared
    written = set(re.findall(r'outputs\.write\("([a-z0-9-]+)"', ACTION_CODE))
    assert written == set(declared)
    assert all(spec.get("description") for spec in ACTION["outputs"].values())


def test_action_runs_the_dockerfile_and_has_branding() -> None:
    assert ACTION["runs"] == {"using": "docker", "image": "Dockerfile"}
    assert ACTION["branding"]["icon"] and ACTION["branding"]["color"]


def test_every_config_key_is_documented() -> None:
    section = README.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(?:hypotheses\[\]\.)?([a-z-]+)`", section, flags=re.MULTILINE))
    documented |= set(re.findall(r"`([a-z]+)`", section))
    top = {f.alias or name for name, f in ExecutionSettings.model_fields.items()}
    assert top <= documented, top - documented
    assert "`hypotheses[].name`" in section
    assert set(Hypothesis.model_fields) <= documented
    assert set(RunnerConfig.model_fields) == set(ExecutionSettings.model_fields) | {"hypotheses"}


def test_readme_commands_exist() -> None:
    assert "bash examples/demo.sh" in README and (REPO_ROOT / "examples" / "demo.sh").is_file()
    assert "bash scripts/test.sh" in README and (REPO_ROOT / "scripts" / "test.sh").is_file()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci  # CI runs the README's test command
