"""The Hydra application behind `aaexp train`: every Hydra flag works unchanged."""

import hydra
from omegaconf import DictConfig

from aaexp.core.config import CONF_DIR, CONFIG_NAME
from aaexp.training import runner


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=CONFIG_NAME)
def main(cfg: DictConfig):
    return runner.run(cfg)


if __name__ == "__main__":
    main()
