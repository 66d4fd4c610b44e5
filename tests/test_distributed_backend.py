"""Process-group setup: the backend follows the device (NCCL on CUDA, gloo on CPU), and a one-rank
group (``always_group``) runs the whole distributed training path -- collectives, global-batch BN
(SyncBatchNorm under NCCL, DistBatchNorm2d under gloo), DDP -- giving the plain run's losses. The
``cuda`` variant is the 1-GPU NCCL check of ``benchmarks/gpu_check.sh``; the 2-rank gloo equality
is ``tests/test_rpl_train_ddp.py``."""
from __future__ import annotations

import pytest
import torch

from oodbench import segmenters
from oodbench.training.distributed import (
    backend_for,
    cleanup_distributed,
    gather_rows,
    global_sum,
    init_distributed,
)
from oodbench.training.syncbn import DistBatchNorm2d

CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def test_backend_follows_the_device():
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 0)) == "nccl"


@pytest.fixture
def one_rank(monkeypatch):
    """``init_distributed(device, always_group=True)`` outside torchrun; destroyed afterwards."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    made = []

    def make(device: str):
        made.append(init_distributed(device, timeout_s=120, always_group=True))
        return made[-1]

    yield make
    for ctx in made:
        cleanup_distributed(ctx)





@pytest.mark.parametrize("device", DEVICES)
def test_one_rank_group_trains_like_one_plain_process(tiny_city, tmp_path, coco_pairs, one_rank, device):
    from oodbench.methods.rpl.model import RPLNet
    from oodbench.methods.rpl.train import RPLTrainConfig, RPLTrainer
    from oodbench.training.logs import read_csv_log

    def run(name: str, ctx=None):
        torch.manual_seed(0)
        net = RPLNet(segmenters.build("deeplabv3plus_small"), projector=True)
        cfg = RPLTrainConfig(out_dir=str(tmp_path / name), segmenter="deeplabv3plus_small", crop_size=(32, 32),
                             batch_size=2, max_iters=3, ckpt_every=3, num_workers=0, progress=False, seed=4,
                             max_views=64, val_splits="none", device=device, amp=False, residual_dropout=0.0)
        trainer = RPLTrainer(cfg, ctx=ctx, model=net, city=tiny_city(4), coco=coco_pairs)
        trainer.fit()
        return trainer, read_csv_log(tmp_path / name / "train.csv")

    _, plain = run("plain")
    ctx = one_rank(device)
    assert ctx.distributed and ctx.world_size == 1 and ctx.backend == backend_for(ctx.device)
    assert torch.distributed.get_backend(ctx.group) == ctx.backend
    x = torch.arange(3.0, device=ctx.device)
    assert torch.equal(global_sum(x, ctx).to(x.device), x)
    assert torch.equal(gather_rows(x[:, None], ctx), x[:, None])
    trainer, grouped = run("group", ctx)
    bn = torch.nn.SyncBatchNorm if ctx.device.type == "cuda" else DistBatchNorm2d
    assert any(isinstance(m, bn) for m in trainer.model.branch1.residual_block.modules())
    assert isinstance(trainer.ddp, torch.nn.parallel.DistributedDataParallel)
    assert len(plain) == len(grouped) == 3 and any(r["corocl_active"] == "1" for r in plain)
    for a, b in zip(plain, grouped):  # global BN sums in another order (and CUDA adds atomically)
        scale = abs(float(a["total"]))
        for key in ("ce", "reg", "energy", "corocl", "total"):
            x, y = float(a[key]), float(b[key])
            assert abs(x - y) <= 1e-4 * scale, (a["iteration"], key, x, y)
