"""apslib.notebooks: profiles, parameter resolution and error messages (no kernel needed)."""

from pathlib import Path

import pytest

from apslib import notebooks as runner


def test_profiles_exist():
    assert {"smoke", "default", "paper"} <= set(runner.profiles())


def test_unknown_profile_names_the_available_ones():
    with pytest.raises(runner.RunnerError, match="unknown profile 'nope'.*smoke"):
        runner.load_profile("nope")


def test_resolution_order_and_paths(tmp_path):
    nb = Path("notebooks/01_fake.ipynb")
    declared = {"seed": {}, "size": {}, "figure_dir": {}, "output_dir": {}}
    profile = {"all": {"seed": 0, "figure_dir": "figures", "unused_elsewhere": 1},
               "01": {"size": 32, "output_dir": "{out}/artifacts"}}
    params = runner.resolve_parameters(nb, profile, {"seed": 7}, tmp_path, declared)
    assert params["seed"] == 7  # -p wins over the profile
    assert params["size"] == 32
    assert params["figure_dir"] == str(runner.REPO / "figures")
    assert params["output_dir"] == str(tmp_path / "artifacts")
    assert "unused_elsewhere" not in params  # 'all' applies only where declared


def test_profile_setting_an_undeclared_parameter_is_an_error(tmp_path):
    with pytest.raises(runner.RunnerError, match="declares no such parameter"):
        runner.resolve_parameters(Path("01_x.ipynb"), {"01": {"sise": 3}}, {}, tmp_path,
                                  {"size": {}})


def test_cli_errors_are_reported_not_raised(capsys):
    assert runner.main(["--profile", "nope"]) == 1
    assert "unknown profile" in capsys.readouterr().err
    assert runner.main(["--profile", "smoke", "--only", "99"]) == 1
    assert "matches no notebook" in capsys.readouterr().err
    assert runner.main(["--profile", "smoke", "--only", "01", "-p", "no_such_param", "1"]) == 1
    assert "no selected notebook declares" in capsys.readouterr().err


def test_override_values_are_yaml():
    assert runner._parse_overrides([["depth", "3"], ["dtype", "float32"], ["ch", "[4, 8]"]]) == {
        "depth": 3, "dtype": "float32", "ch": [4, 8]}
    with pytest.raises(runner.RunnerError):
        runner._parse_overrides([["not a name", "1"]])


def test_list(capsys):
    assert runner.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "01_theory_propositions.ipynb" in out and "profiles:" in out
