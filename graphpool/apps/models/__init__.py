"""Graph neural networks whose graph readout is any graphpool readout."""
from .gin import GIN

__all__ = ["GIN"]
