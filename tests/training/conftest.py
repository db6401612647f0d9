"""What the training tests share: the level datasets of two small feature files."""

import pytest

from finmoirai.data.builder import IterativeFinancialDatasetBuilder
from finmoirai.params.data import SplitConfig
from tests.helpers import write_feature_dir


@pytest.fixture
def builder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    features = write_feature_dir(tmp_path / "features", {"AAA": 1200, "BBB": 1000})
    b = IterativeFinancialDatasetBuilder(tmp_path / "datasets", batch_size=1)
    b.build_dataset(features, SplitConfig(train_end="2018-10-01", val_end="2018-10-15"))
    return b.for_target("level")
