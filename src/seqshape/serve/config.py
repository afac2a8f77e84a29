"""The configuration of one server (the `seqshape serve` flags): limits, stream settings, the key."""

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..limits import MAX_HORIZON
from .store import default_state_path


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Limits and stream settings of one server (the `seqshape serve` flags)."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 256  # sequences per predict
    max_steps: int = 10_000  # T of one sequence / history
    max_features: int = 1024  # numbers per step, before the model's own F check
    max_points: int = 256  # points per observe
    max_horizon: int = MAX_HORIZON  # K of a forecast (limits.py: the CLI's bound too)
    max_streams: int = 1000  # open streams
    idle_timeout: float = 600.0  # seconds without an observe before a stream is closed
    replay_window: int = 16  # answers kept per stream for repeated seqs
    state_path: Path = field(default_factory=default_state_path)
    state_sync: str = "normal"
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_batch",
            "max_steps",
            "max_features",
            "max_points",
            "max_horizon",
            "max_streams",
            "replay_window",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {v!r}")
        if not (isinstance(self.idle_timeout, int | float) and self.idle_timeout > 0):
            raise ConfigError(f"idle_timeout: expected seconds > 0, got {self.idle_timeout!r}")
        if self.state_sync not in ("normal", "full"):
            raise ConfigError(f"state_sync: expected 'normal' or 'full', got {self.state_sync!r}")
        if self.api_key is not None and (
            not self.api_key or any(c.isspace() for c in self.api_key)
        ):
            raise ConfigError("api_key: expected a non-empty key without whitespace")


def read_api_key(path: str | Path) -> str:
    """The key in ``path`` (surrounding whitespace stripped)."""
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--api-key-file {path}: cannot read it ({e})") from None
    if not key or any(c.isspace() for c in key):
        raise ConfigError(
            f"--api-key-file {path}: expected one key without whitespace, got "
            + ("an empty file" if not key else "text with spaces or several lines")
        )
    return key
