"""Plain helpers shared by several test modules (importable because conftest puts tests/ on sys.path)."""
from __future__ import annotations

import numpy as np


class TinyCity:
    """Stand-in for CityscapesSegmentation (uint8 image, uint8 train ids with a void band)."""

    def __init__(self, n: int, h: int = 40, w: int = 56) -> None:
        self.n, self.h, self.w = n, h, w

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        img = rng.integers(0, 256, (self.h, self.w, 3), dtype=np.uint8)
        lab = rng.integers(0, 19, (self.h, self.w)).astype(np.uint8)
        lab[:3] = 255
        return img, lab


def rpl_net(projector: bool = True):
    """A seeded RPL+CoroCL network on the small segmenter."""
    import torch

    from oodbench import segmenters
    from oodbench.methods.rpl.model import RPLNet

    torch.manual_seed(0)
    return RPLNet(segmenters.build("deeplabv3plus_small"), projector=projector)


def rpl_train_config(out, **kw):
    """A tiny RPL training configuration (32x32 crops, batch 2, 2 epochs of :class:`TinyCity` (6))."""
    from oodbench.methods.rpl.train import RPLTrainConfig

    base = dict(out_dir=str(out), segmenter="deeplabv3plus_small", crop_size=(32, 32), batch_size=2, epochs=2,
                ckpt_every=2, num_workers=0, progress=False, seed=3, max_views=64)
    base.update(kw)
    return RPLTrainConfig(**base)


def rpl_train(out, coco, net=None, **kw):
    """Train RPL+CoroCL on ``TinyCity(6)`` and ``coco`` pairs (see :func:`rpl_train_config`)."""
    from oodbench.methods.rpl.train import train_rpl

    return train_rpl(rpl_train_config(out, **kw), model=net if net is not None else rpl_net(), city=TinyCity(6),
                     coco=coco)


def one_line_error(proc, *needles) -> str:
    """Assert a CLI user error: exit code 2, one line on stderr naming every needle, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
