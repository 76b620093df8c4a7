import pytest

from driftline.detectors import ConfigError, DetectionConfig, FeatureConfig, load_config


def test_defaults_need_no_file():
    s = DetectionConfig().for_model("any")
    assert s.false_alarms_per_million == 1.0
    assert s.feature("x").kind is None
    assert s.enabled("x", "mean")


def test_toml_overrides_per_model_and_feature(tmp_path):
    path = tmp_path / "driftline.toml"
    path.write_text(
        """
[detection]
warmup = 500
ignore = ["request_id"]
[detection.features.country]
kind = "categorical"
[detection.models.fraud]
false_alarms_per_million = 0.5
block = 128
ignore = ["session"]
[detection.models.fraud.features.amount]
detectors = ["mean"]
[detection.models.fraud.features.country]
ignore = true
"""
    )
    cfg = load_config(path)
    fraud = cfg.for_model("fraud")
    other = cfg.for_model("other")
    assert (fraud.warmup, fraud.block, fraud.false_alarms_per_million) == (500, 128, 0.5)
    assert (other.block, other.false_alarms_per_million) == (DetectionConfig().block, 1.0)
    assert fraud.ignore == {"request_id", "session", "country"}
    assert other.ignore == {"request_id"}
    assert other.feature("country").kind == "categorical"
    assert fraud.enabled("amount", "mean") and not fraud.enabled("amount", "shape")


def test_top_level_file_without_detection_table(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text("warmup = 300\n")
    assert load_config(path).warmup == 300


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[detection]\nwarmup = 'x'\n", "detection.warmup"),
        ("[detection]\nwarmup = 0\n", "detection.warmup"),
        ("[detection]\nbogus = 1\n", "bogus"),
        ("[detection.features.a]\nkind = 'date'\n", "detection.features.a.kind"),
        ("[detection.models.m.features.a]\ndetectors = ['nope']\n", "detectors"),
        ("[detection]\nconfirm_alpha = 2.0\n", "confirm_alpha"),
        ("[detection\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, where):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_config_is_frozen():
    cfg = DetectionConfig()
    with pytest.raises(AttributeError):
        cfg.warmup = 3  # type: ignore[misc]
    assert FeatureConfig(kind="numeric").kind == "numeric"
    with pytest.raises(ConfigError):
        DetectionConfig(block=0)


# ----------------------------------------------------------------- presets (issue 12)
def test_changepoint_preset_and_overrides(tmp_path):
    from driftline.detectors import PRESETS

    cp = DetectionConfig.preset("changepoint")
    assert (cp.block, cp.readapt_after) == (1, 0)
    assert {k: getattr(cp, k) for k in PRESETS["changepoint"]} == PRESETS["changepoint"]
    f = tmp_path / "d.toml"
    f.write_text('[detection]\npreset = "changepoint"\nwarmup = 40\n')
    cfg = load_config(f)
    assert cfg.warmup == 40 and cfg.block == 1
    assert load_config(None, "changepoint") == cp
    f.write_text("[detection]\nwarmup = 40\n")
    assert load_config(f, "changepoint").block == 1  # --preset under a file without one


def test_preset_errors_name_the_problem(tmp_path):
    f = tmp_path / "d.toml"
    f.write_text('[detection]\npreset = "bogus"\n')
    with pytest.raises(ConfigError, match="unknown preset 'bogus'"):
        load_config(f)
    f.write_text('[detection]\npreset = "default"\n')
    with pytest.raises(ConfigError, match="conflicts with --preset 'changepoint'"):
        load_config(f, "changepoint")
