"""RPL+CoroCL (Residual Pattern Learning with context-robust contrastive learning, ICCV 2023).

* :mod:`.model` -- :class:`RPLNet`, the residual block on a frozen DeepLabV3+ (official key layout);
* :mod:`.weights` -- loading ``rev3.pth``/``res.pth``/segmenter checkpoints, saving ours;
* :mod:`.method` -- the ``rpl`` method (registered on import);
* :mod:`.losses` -- the RPL and CoroCL training losses.
"""
from .method import RPL  # registers "rpl"
from .model import RPLNet

__all__ = ["RPL", "RPLNet"]
