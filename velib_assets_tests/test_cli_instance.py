"""`velib` commands find or create their Dagster instance the way `make dev` does."""

from pathlib import Path

import pytest

from velib_assets.pipeline import instance_for_cli


@pytest.mark.parametrize("preset", [True, False])
def test_instance_home_is_created_with_the_project_config(tmp_path: Path, monkeypatch, preset: bool) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.chdir(project)
    home = tmp_path / "not" / "there" / "yet"
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # recorded, so teardown restores what was there
    if not preset:
        monkeypatch.delenv("DAGSTER_HOME")
        home = project / ".dagster_home"
    with instance_for_cli() as instance:
        assert Path(instance.root_directory) == home.resolve()
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
