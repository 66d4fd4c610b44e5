"""Ablation options of ``oodbench train --method rpl``: each changes exactly the part it names."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from oodbench import segmenters
from oodbench.methods.rpl.weights import projector_spec
from oodbench.methods.rpl.losses import (
    DEFAULT_ANCHORS,
    DEFAULT_CONTRAST,
    OOD_LABEL,
    PoolSampler,
    contrastive_from_samples,
    corocl_loss,
    parse_pools,
)
from oodbench.methods.rpl.train import RPLTrainConfig, build_network

PROJ = "branch1.residual_block.proj_head."


def _net(**cfg):
    torch.manual_seed(0)
    return build_network(RPLTrainConfig(**cfg), segmenters.build("deeplabv3plus_small"))


def _shapes(net):
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("options, proj_keys, depth", [
    ({"projector": "mlp"}, {"proj.0.weight", "proj.0.bias", "proj.2.weight", "proj.2.bias"}, None),
    ({"projector": "mlp-bn"}, {"proj.0.weight", "proj.1.weight", "proj.1.bias", "proj.1.running_mean",
                               "proj.1.running_var", "proj.1.num_batches_tracked", "proj.3.weight", "proj.3.bias"}, None),
    ({"embed_dim": 128}, {"proj.0.weight", "proj.0.bias"}, 128),
    ({"corocl_weight": 0.0}, set(), None),
])
def test_projector_options_change_only_the_projector(options, proj_keys, depth):
    base, other = _shapes(_net()), _shapes(_net(**options))
    outside = {k: v for k, v in base.items() if not k.startswith(PROJ)}
    assert {k: v for k, v in other.items() if not k.startswith(PROJ)} == outside
    assert {k[len(PROJ):] for k in other if k.startswith(PROJ)} == proj_keys
    net = _net(**options)
    spec = projector_spec(net.state_dict())
    if not proj_keys:
        assert spec is None and net.residual_block.proj_head is None
    else:
        kind = options.get("projector", "linear")
        assert spec == (kind, depth or net.segmenter.decoder_channels)
        _, _, proj = net.train()(torch.randn(2, 3, 32, 32))
        assert proj.shape[1] == (depth or net.segmenter.decoder_channels)


def test_rpl_method_loads_every_projector_variant(tmp_path):
    from oodbench.methods.rpl.weights import save_rpl_checkpoint
    from oodbench.methods.rpl.method import RPL

    for options in ({"projector": "mlp-bn", "embed_dim": 64}, {"corocl_weight": 0.0}):
        net = _net(**options)
        path = tmp_path / "rpl.pth"
        save_rpl_checkpoint(net, path, config={"recipe": "paper", "projector": options.get("projector", "linear")},
                            selected_on="road-anomaly")
        m = RPL(segmenter="deeplabv3plus_small", checkpoint=path)
        assert m.untrained_reason() is None and m.selected_on == "road-anomaly"
        assert m.hparams()["train_recipe"] == "paper"
        x = torch.randn(1, 3, 32, 32)
        assert torch.equal(m.predict(x)[0], RPL(segmenter="deeplabv3plus_small", checkpoint=path).predict(x)[0])


# ------------------------------------------------------------------------------------ CoroCL sets
def _inputs():
    """Embeddings whose four pools have distinct sizes (city OoD 6, city inlier 10, COCO OoD 8, inlier 12)."""
    g = torch.Generator().manual_seed(0)
    city, coco = torch.randn(1, 5, 6, 6, generator=g), torch.randn(1, 5, 6, 6, generator=g)
    cg = torch.full((1, 6, 6), 255)
    cg.view(-1)[:6] = OOD_LABEL
    cg.view(-1)[6:16] = 3
    og = torch.full((1, 6, 6), 255)
    og.view(-1)[:8] = OOD_LABEL
    og.view(-1)[8:20] = 0
    return city, cg, coco, og


class Recorder(PoolSampler):
    def __init__(self):
        self.sizes_seen = []

    def sizes(self, pools):
        self.sizes_seen = super().sizes(pools)
        return self.sizes_seen


def test_default_sets_are_the_reference_computation():
    city, cg, coco, og = _inputs()
    loss = corocl_loss(city, cg, coco, og, max_views=4, generator=torch.Generator().manual_seed(1))
    # the reference (docs/rpl-official.md §4.2): N per pool, anchors city OoD+inlier, contrasts anchors + COCO OoD+inlier
    import torch.nn.functional as F

    flat = lambda p: F.normalize(p, dim=1).permute(0, 2, 3, 1).reshape(-1, 5)
    ec, eo, lc, lo = flat(city), flat(coco), cg.reshape(-1), og.reshape(-1)
    g = torch.Generator().manual_seed(1)
    pools = [ec[lc == OOD_LABEL], ec[(lc != OOD_LABEL) & (lc != 255)], eo[lo == OOD_LABEL], eo[(lo != OOD_LABEL) & (lo != 255)]]
    s = [p[torch.randperm(len(p), generator=g)[:4]] for p in pools]
    ones = torch.ones(4, dtype=torch.int64)
    anchors, al = torch.cat(s[:2]), torch.cat([ones, ones * 0])
    ref = contrastive_from_samples(anchors, al, torch.cat([anchors, *s[2:]]), torch.cat([al, ones, ones * 0]))
    assert torch.equal(loss, ref)
    assert parse_pools(",".join(DEFAULT_ANCHORS)) == DEFAULT_ANCHORS
    assert parse_pools(",".join(reversed(DEFAULT_CONTRAST))) == DEFAULT_CONTRAST  # order does not matter


@pytest.mark.parametrize("anchors, contrast, pools_used", [
    ("city-ood,city-inlier", "city-ood,city-inlier", [6, 10]),                                # Table 3 row 1
    ("coco-ood,coco-inlier", "coco-ood,coco-inlier", [8, 12]),                                # row 2
    ("coco-ood,coco-inlier", "city-ood,city-inlier,coco-ood,coco-inlier", [6, 10, 8, 12]),    # row 3
    ("city-ood,city-inlier,coco-ood,coco-inlier", "coco-inlier,city-ood,coco-ood,city-inlier", [6, 10, 8, 12]),  # row 5
])
def test_anchor_and_contrast_sets_sample_exactly_the_named_pools(anchors, contrast, pools_used):
    city, cg, coco, og = _inputs()
    rec = Recorder()
    loss = corocl_loss(city, cg, coco, og, max_views=64, generator=torch.Generator().manual_seed(1), sampler=rec,
                       anchors=anchors, contrast=contrast)
    assert rec.sizes_seen == pools_used and torch.isfinite(loss)
    if anchors == contrast:  # contrast set = the anchors themselves: a plain self-excluding SupCon on them
        import torch.nn.functional as F

        g = torch.Generator().manual_seed(1)
        flat = lambda p: F.normalize(p, dim=1).permute(0, 2, 3, 1).reshape(-1, 5)
        e, lab = (flat(city), cg.reshape(-1)) if anchors.startswith("city") else (flat(coco), og.reshape(-1))
        ood, inl = e[lab == OOD_LABEL], e[(lab != OOD_LABEL) & (lab != 255)]
        n = min(pools_used)
        s = [p[torch.randperm(len(p), generator=g)[:n]] for p in (ood, inl)]
        labels = torch.cat([torch.ones(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64)])
        a = torch.cat(s)
        assert torch.allclose(loss, contrastive_from_samples(a, labels, a, labels))


def test_unknown_pool_is_a_clear_error():
    with pytest.raises(ValueError, match="--anchors: unknown pools city-sky"):
        parse_pools("city-sky,city-ood")
    with pytest.raises(ValueError, match="--contrast: no pool named"):
        parse_pools(" , ", "--contrast")


def test_ablation_options_leave_the_rpl_loss_alone():
    """The CoroCL sets and the projector touch neither the RPL head nor the RPL loss terms."""
    a, b = _net(), _net(projector="mlp", anchors="coco-ood,coco-inlier")
    a.eval(), b.eval()
    x = torch.randn(1, 3, 32, 32)
    assert all(torch.equal(u, v) for u, v in zip(a(x)[:2], b(x)[:2]))
    cfg = dataclasses.replace(RPLTrainConfig(), anchors="coco-ood")
    assert cfg.contrast == ",".join(DEFAULT_CONTRAST)
