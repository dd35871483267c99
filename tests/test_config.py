"""Strict config coercion: wrong types are refused with a sentence, dotted overrides work."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from particlegraph.config import apply_overrides, from_dict, load_config
from particlegraph.errors import ConfigError
from particlegraph.train.loop import FitConfig


@dataclass(frozen=True)
class Inner:
    epochs: int = 10
    lr: float = 1e-3
    device: str = "auto"
    amp: bool = False
    cap: int | None = None
    weights: tuple[float, ...] = (1.0, 1.0)


@dataclass(frozen=True)
class Outer:
    fit: Inner = field(default_factory=Inner)
    name: str = "run"


@pytest.mark.parametrize(
    ("override", "expected", "shown"),
    [
        ("fit.epochs=2.7", "an integer", "2.7 (a float)"),
        ("fit.epochs=3.0", "an integer", "3.0 (a float)"),  # integral floats are refused too
        ("fit.epochs=true", "an integer", "True (a bool)"),
        ("fit.lr=true", "a number", "True (a bool)"),
        ("fit.lr=[1]", "a number", "[1] (a list)"),
        ("fit.device=[1]", "a string", "[1] (a list)"),
        ("fit.device=1", "a string", "1 (an int)"),
        ("fit.amp=1", "true or false", "1 (an int)"),
        ("fit.cap=2.5", "an integer", "2.5 (a float)"),
        ("fit.weights=1.0", "a list", "1.0 (a float)"),
        ("fit.weights=[1.0, yes]", "a number", "True (a bool)"),
        ("fit=3", "a mapping", "3 (an int)"),
    ],
)
def test_wrong_types_raise_a_sentence(override: str, expected: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Outer, None, [override])
    msg = str(info.value)
    key = override.split("=")[0]
    assert f"config key {key}" in msg or f"config key {key}[1]" in msg
    assert f"must be {expected}" in msg
    assert shown in msg


def test_accepted_values_and_their_types() -> None:
    cfg = load_config(
        Outer,
        None,
        ["fit.epochs=3", "fit.lr=2", "fit.device=cuda", "fit.amp=true", "fit.cap=7",
         "fit.weights=[1, 0.5]", "name=x"],
    )  # fmt: skip
    assert cfg == Outer(Inner(3, 2.0, "cuda", True, 7, (1.0, 0.5)), "x")
    assert type(cfg.fit.epochs) is int and type(cfg.fit.lr) is float  # int accepted for float
    assert all(type(w) is float for w in cfg.fit.weights)
    # PyYAML reads 1e-3 (no dot) as a string: number-like strings are accepted for numbers
    assert load_config(Outer, None, ["fit.lr=1e-3"]).fit.lr == pytest.approx(1e-3)
    assert load_config(Outer, None, ["fit.cap=null"]).fit.cap is None
    with pytest.raises(ConfigError, match=r"must be a number, got 'fast' \(a str\)"):
        load_config(Outer, None, ["fit.lr=fast"])


def test_real_fit_config_rejects_the_issue_examples() -> None:
    for bad, value in [("epochs", 2.7), ("lr", True), ("device", [1])]:
        with pytest.raises(ConfigError, match=rf"config key {bad} in FitConfig must be"):
            from_dict(FitConfig, {bad: value}, where="FitConfig")
    assert from_dict(FitConfig, {"epochs": 2, "lr": 1}).lr == 1.0


def test_yaml_file_errors_name_the_file_and_key(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("fit:\n  epochs: 2.7\n")
    with pytest.raises(ConfigError, match=rf"config key fit.epochs in {path} must be an integer"):
        load_config(Outer, path)
    with pytest.raises(ConfigError, match=rf"config key fit.epochs in {path} must be an integer"):
        load_config(Outer, str(path))  # a str path names the file too
    path.write_text("fit:\n  epoch: 2\n")
    with pytest.raises(ConfigError, match=r"section fit: unknown key\(s\) \['epoch'\]"):
        load_config(Outer, path)


def test_dotted_overrides() -> None:
    data = apply_overrides({"fit": {"epochs": 1}}, ["fit.epochs=3", "fit.new.deep=x", "top=1"])
    assert data == {"fit": {"epochs": 3, "new": {"deep": "x"}}, "top": 1}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["fit.epochs"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"fit": 1}, ["fit.epochs=2"])


def test_shipped_configs_load_and_errors_name_them(tmp_path, monkeypatch) -> None:
    """A package's configs/*.yaml load by name; errors name the file (engine only: a fake package)."""
    from particlegraph.config import shipped_configs

    pkg = tmp_path / "pgfake_task"
    (pkg / "configs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "configs" / "small.yaml").write_text("fit:\n  epochs: 2\n")
    (pkg / "configs" / "bad.yaml").write_text("fit:\n  epochs: 2.7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert shipped_configs("pgfake_task") == ["bad", "small"]
    assert load_config(Outer, "small", package="pgfake_task").fit.epochs == 2
    with pytest.raises(
        ConfigError, match=r"config key fit.epochs in .*bad.yaml must be an integer"
    ):
        load_config(Outer, "bad", package="pgfake_task")
    with pytest.raises(ConfigError, match=r"neither a file nor a shipped config \(bad, small\)"):
        load_config(Outer, "nope", package="pgfake_task")


@pytest.mark.parametrize(
    ("override", "field", "value"),
    [
        ("fit.epochs='3'", "epochs", 3),  # quoted in YAML: a string that spells an integer
        ('fit.epochs="3"', "epochs", 3),
        ("fit.epochs=' +3 '", "epochs", 3),
        ("fit.cap='7'", "cap", 7),  # through the int | None union too
        ("fit.lr='0.5'", "lr", 0.5),
        ("fit.amp='yes'", "amp", True),
        ("fit.amp='off'", "amp", False),
    ],
)
def test_quoted_overrides_come_back_typed(override: str, field: str, value: object) -> None:
    got = getattr(load_config(Outer, None, [override]).fit, field)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("override", ["fit.epochs='3.0'", "fit.epochs='three'", "fit.epochs=''"])
def test_quoted_non_integers_are_refused_in_one_line(override: str) -> None:
    with pytest.raises(
        ConfigError, match=r"config key fit\.epochs in Outer must be an integer"
    ) as e:
        load_config(Outer, None, [override])
    assert "\n" not in str(e.value)


def _fit(**kw: object) -> FitConfig:
    return from_dict(FitConfig, dict(kw), where="FitConfig")


def test_fit_defaults_are_the_documented_values() -> None:
    fit = load_config(FitConfig, None)
    assert (fit.epochs, fit.lr, fit.optimizer, fit.schedule) == (10, 1e-3, "adamw", "cosine")
    assert (fit.weight_decay, fit.grad_clip, fit.patience, fit.seed) == (1e-4, 0.0, 0, 0)


@pytest.mark.parametrize(
    "ok",
    [{"epochs": 1}, {"lr": 1e-12}, {"final_lr_fraction": 0.0}, {"final_lr_fraction": 1.0},
     {"patience": 0}, {"log_every": 1}, {"num_threads": 0}, {"grad_clip": 0.0},
     {"warmup_steps": 0}, {"weight_decay": 0.0}],
)  # fmt: skip
def test_fit_boundaries_accepted(ok: dict[str, object]) -> None:
    fit = _fit(**ok)
    ((key, value),) = ok.items()
    assert getattr(fit, key) == value


@pytest.mark.parametrize(
    ("bad", "match"),
    [({"epochs": 0}, "fit.epochs must be >= 1"), ({"lr": 0.0}, "fit.lr must be"),
     ({"lr": -1e-3}, "fit.lr must be"), ({"lr": "inf"}, "fit.lr must be"),
     ({"lr": "nan"}, "fit.lr must be"), ({"final_lr_fraction": -1e-9}, "final_lr_fraction"),
     ({"final_lr_fraction": 1.000001}, "final_lr_fraction"), ({"patience": -1}, "patience"),
     ({"log_every": 0}, "log_every"), ({"num_threads": -1}, "num_threads"),
     ({"grad_clip": -1e-9}, "grad_clip"), ({"weight_decay": "inf"}, "weight_decay"),
     ({"grad_clip": "nan"}, "grad_clip"), ({"warmup_steps": -1}, "warmup_steps")],
)  # fmt: skip
def test_fit_boundaries_refused(bad: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _fit(**bad)


def test_parse_mapping_names_the_source_in_one_line() -> None:
    from particlegraph.config import parse_mapping

    assert parse_mapping("a: 1\nb: [2, 3]\n", "x.yaml") == {"a": 1, "b": [2, 3]}
    assert parse_mapping("", "empty.yaml") == {}
    with pytest.raises(ConfigError, match=r"^bad\.yaml is not valid YAML"):
        parse_mapping("a: [1", "bad.yaml")
    with pytest.raises(ConfigError, match=r"^list\.yaml must hold a mapping at the top level$"):
        parse_mapping("- 1\n- 2\n", "list.yaml")
