import json

import pytest

from keras_ssl import cli


@pytest.mark.large
@pytest.mark.savedmodel
def test_quickstart_writes_the_report(tmp_path):
    # A short run (2 epochs, 1 seed): checks the whole pipeline, not the accuracy.
    code = cli.main(
        ["quickstart", "--output", str(tmp_path), "--epochs", "2", "--seeds", "0", "--fine-tune-epochs", "1"]
    )
    assert code == 0
    for name in (
        "report.md",
        "results.json",
        "loss.png",
        "embeddings.png",
        "accuracy.png",
        "encoder_bundle/saved_model.pb",
    ):
        assert (tmp_path / name).is_file(), name
    results = json.loads((tmp_path / "results.json").read_text())
    scores = results["seeds"]["0"]
    for arm in ("random_init", "pretrained"):
        assert 0.0 <= scores[arm]["knn"] <= 1.0 and 0.0 <= scores[arm]["linear"] <= 1.0
    assert len(scores["loss"]) == 2
    assert results["fine_tune"]["reloaded_bundle_matches"] is True
    assert "| 0 | pretrained |" in (tmp_path / "report.md").read_text()


@pytest.mark.large
def test_quickstart_pretraining_beats_random_init_by_more_than_the_seed_spread(tmp_path):
    results = cli.main(["quickstart", "--output", str(tmp_path)])
    assert results == 0
    margins = json.loads((tmp_path / "results.json").read_text())["margins"]
    assert margins["knn"]["gain_exceeds_spread"] and margins["linear"]["gain_exceeds_spread"]
    assert margins["knn"]["gain"] > 0.03


def test_cli_help_and_list(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "quickstart" in capsys.readouterr().out
    assert cli.main(["list"]) == 0
    assert "simclr" in capsys.readouterr().out.split()
