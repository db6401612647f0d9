"""DVC stage `lake`: write the embedded demo lake (lake.source: demo) or a synthetic market
(lake.source: synthetic, sized by lake.synthetic) to data/lake, or only a marker if the user
points lake.path at their own lake, so the stage output still exists."""

import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai.runtime import start_stage  # noqa: E402

if __name__ == "__main__":
    start_stage(deterministic=True)  # before numpy loads: the same bytes on every x86-64 machine

from finmoirai.lake import DEFAULT_LAKE, LakeConfig, is_demo_lake, write_demo_lake  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.params import section  # noqa: E402

logger = logging.getLogger("stages.lake")


def main() -> None:
    cfg = section(stage_params("lake"), LakeConfig, "lake")
    out = Path(DEFAULT_LAKE)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if not is_demo_lake(cfg.path):
        logger.info("lake.path is %s: using the user lake, not writing the demo lake", cfg.path)
        (out / "_SKIPPED").touch()
        return
    if cfg.source == "synthetic":
        from finmoirai.synthetic import write_synthetic_lake

        info = write_synthetic_lake(out, cfg.synthetic_config())
        logger.info("synthetic lake: %d assets, %d rows in %s; set features.market_proxy to %s and "
                    "extract.years to %s", info["assets"], info["rows"], out, info["market_proxy"], info["years"])
        return
    summary = write_demo_lake(out)
    logger.info("demo lake: %d partitions, %d rows in %s", len(summary), sum(r["rows"] for r in summary), out)


if __name__ == "__main__":
    main()
