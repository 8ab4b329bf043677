"""``python -m tools.webui``'s command line: help and bad arguments start nothing."""

import pytest

from tools import webui


@pytest.fixture
def nothing_starts(monkeypatch):
    started = []
    monkeypatch.setattr(webui, "start", lambda: started.append("start") or 0)
    monkeypatch.setattr(webui, "stop", lambda: started.append("stop") or 0)
    return started


def test_help_prints_usage_and_starts_nothing(nothing_starts, capsys):
    with pytest.raises(SystemExit) as exited:
        webui.main(["--help"])
    assert exited.value.code == 0 and "start,stop" in capsys.readouterr().out
    assert nothing_starts == []


def test_an_unknown_command_is_refused_naming_the_choices(nothing_starts, capsys):
    with pytest.raises(SystemExit) as exited:
        webui.main(["bogus"])
    assert exited.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err
    assert nothing_starts == []


@pytest.mark.parametrize(("argv", "ran"), [([], ["start"]), (["start"], ["start"]), (["stop"], ["stop"])])
def test_the_commands_run_what_they_name(nothing_starts, argv, ran):
    assert webui.main(argv) == 0 and nothing_starts == ran


def test_tools_is_this_projects_package_and_not_a_namespace_of_the_same_name():
    from pathlib import Path

    import tools

    assert Path(tools.__file__).resolve() == Path(__file__).resolve().parents[2] / "tools" / "__init__.py"
