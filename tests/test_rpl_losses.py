"""RPL and CoroCL losses against values computed by hand (formulas in methods/rpl/losses.py)."""
from __future__ import annotations

import math

import pytest
import torch

from oodbench.methods.rpl.losses import (
    DistributedPoolSampler,
    PoolSampler,
    contrastive_from_samples,
    corocl_loss,
    rpl_loss,
    rpl_loss_parts,
)
from oodbench.training.distributed import DistContext


def _entropy(logits):
    m = max(logits)
    e = [math.exp(v - m) for v in logits]
    s = sum(e)
    p = [max(v / s, 1e-7) for v in e]
    return -sum(v * math.log(v) for v in p)


def _lse(logits):
    m = max(logits)
    return m + math.log(sum(math.exp(v - m) for v in logits))


def _maps(pixels):
    """pixels: list of (out1 logits, out2 logits, label) -> [1,C,1,W] tensors and [1,1,W] labels."""
    o1 = torch.tensor([[p[0] for p in pixels]], dtype=torch.float32).permute(0, 2, 1)[:, :, None, :]
    o2 = torch.tensor([[p[1] for p in pixels]], dtype=torch.float32).permute(0, 2, 1)[:, :, None, :]
    y = torch.tensor([[[p[2] for p in pixels]]], dtype=torch.int64)
    return o1, o2, y


PIXELS = [
    # out1 (frozen)   out2 (RPL)     label
    ([0.0, 1.0], [2.0, 0.0], 3),     # inlier, pseudo-label 1 (argmax out1), GT class 3 is irrelevant
    ([3.0, -1.0], [0.5, 0.5], 0),    # inlier, pseudo-label 0
    ([0.0, 0.0], [1.0, 1.0], 254),   # pasted OoD: lse = 1 + ln 2 > 0
    ([0.0, 0.0], [-3.0, -4.0], 254),  # pasted OoD: lse < 0 -> ReLU 0
    ([9.0, -9.0], [-50.0, 50.0], 255),  # void: must not count anywhere
]


def test_rpl_loss_hand_computed():
    o1, o2, y = _maps(PIXELS)
    got = rpl_loss(o1, o2, y)
    # CE with pseudo-labels: -log softmax(out2)[argmax out1]
    ce0 = math.log(math.exp(2) + 1) - 0.0          # pseudo 1, z = [2, 0]
    ce1 = math.log(2.0)                             # pseudo 0, z = [.5, .5]
    assert ce0 == pytest.approx(2.1269280110429727, abs=1e-12)
    ce = (ce0 + ce1) / 2
    reg = ((_entropy([2, 0]) - _entropy([0, 1])) ** 2 + (_entropy([.5, .5]) - _entropy([3, -1])) ** 2) / 2
    energy = (max(_lse([1, 1]), 0) + max(_lse([-3, -4]), 0)) / 2
    assert energy == pytest.approx((1 + math.log(2)) / 2, abs=1e-12)
    assert float(got["ce"]) == pytest.approx(ce, rel=1e-6)
    assert float(got["reg"]) == pytest.approx(reg, rel=1e-5)
    assert float(got["energy"]) == pytest.approx(energy, rel=1e-6)
    assert float(got["total"]) == pytest.approx(ce + reg + 0.05 * energy, rel=1e-6)


def test_rpl_loss_parts_sums_and_counts():
    o1, o2, y = _maps(PIXELS)
    parts = rpl_loss_parts(o1, o2, y)
    assert int(parts["n_in"]) == 2 and int(parts["n_ood"]) == 2
    means = rpl_loss(o1, o2, y)
    assert float(parts["ce"]) / 2 == pytest.approx(float(means["ce"]), rel=1e-7)


def test_rpl_loss_without_ood_pixels_is_grad_safe_zero():
    o1, o2, y = _maps([p for p in PIXELS if p[2] != 254])
    o2.requires_grad_(True)
    got = rpl_loss(o1, o2, y)
    assert float(got["energy"].detach()) == 0.0
    assert float(got["total"].detach()) == pytest.approx(float((got["ce"] + got["reg"]).detach()), rel=1e-7)
    got["total"].backward()
    assert o2.grad is not None and torch.isfinite(o2.grad).all()
    assert float(o2.grad[0, :, 0, 2].abs().sum()) == 0.0  # the void pixel gets no gradient


def test_energy_is_stable_for_huge_logits():
    o1 = torch.zeros(1, 19, 1, 1)
    o2 = torch.full((1, 19, 1, 1), 1000.0)
    y = torch.full((1, 1, 1), 254)
    got = rpl_loss(o1, o2, y)
    assert float(got["energy"]) == pytest.approx(1000 + math.log(19), rel=1e-6)  # naive exp overflows to inf


def test_frozen_logits_get_no_gradient():
    o1, o2, y = _maps(PIXELS)
    o1.requires_grad_(True)
    o2.requires_grad_(True)
    rpl_loss(o1, o2, y)["total"].backward()
    assert o1.grad is None
    assert o2.grad is not None


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="target"):
        rpl_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long))


# ---------------------------------------------------------------------------------------- CoroCL
def _unit(*v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _proj(vectors):
    """[(x, y), ...] per pixel -> [1,2,1,W] projection."""
    return torch.tensor(vectors, dtype=torch.float32).T[None, :, None, :]


def test_corocl_hand_computed_one_sample_per_pool():
    # city: one OoD pixel, one inlier, one void (excluded); coco: one object, one background, one pad
    city = _proj([(1.0, 0.0), (0.0, 2.0), (5.0, 5.0)])
    city_gt = torch.tensor([[[254, 7, 255]]])
    coco = _proj([(3.0, 1.0), (1.0, 1.0), (-4.0, 1.0)])
    coco_gt = torch.tensor([[[254, 0, 255]]])
    loss = corocl_loss(city, city_gt, coco, coco_gt, tau=0.1, max_views=512)
    a1, a2 = _unit(1, 0), _unit(0, 2)
    c1, c2 = _unit(3, 1), _unit(1, 1)
    s = lambda u, v: (u[0] * v[0] + u[1] * v[1]) / 0.1
    # anchor a1 (OoD): positive c1; negatives a2, c2.  anchor a2 (inlier): positive c2; negatives a1, c1
    lp1 = s(a1, c1) - math.log(math.exp(s(a1, c1)) + math.exp(s(a1, a2)) + math.exp(s(a1, c2)))
    lp2 = s(a2, c2) - math.log(math.exp(s(a2, c2)) + math.exp(s(a2, a1)) + math.exp(s(a2, c1)))
    expected = -(lp1 + lp2) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # by hand: lp1 = -ln(1 + e^-9.487 + e^-2.416) = -0.0853, lp2 = -ln(1 + e^-7.071 + e^-3.162) = -0.0208
    assert expected == pytest.approx((0.0853 + 0.0208) / 2, abs=2e-4)


def test_contrastive_two_positives_per_anchor():
    # N = 2 per pool: each anchor has 1 other anchor + 2 COCO samples as positives
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    c = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    al = torch.tensor([1, 1, 0, 0])
    contrast = torch.cat([a, c])
    cl = torch.tensor([1, 1, 0, 0, 1, 1, 0, 0])
    got = contrastive_from_samples(a, al, contrast, cl, tau=0.1)
    total = 0.0
    for i in range(4):
        s = [float(a[i] @ contrast[j]) / 0.1 for j in range(8)]
        neg = [j for j in range(8) if cl[j] != al[i]]
        pos = [j for j in range(8) if cl[j] == al[i] and j != i]
        negsum = sum(math.exp(s[k]) for k in neg)
        total += sum(s[j] - math.log(math.exp(s[j]) + negsum) for j in pos) / len(pos)
    assert float(got) == pytest.approx(-total / 4, rel=1e-5)


class _SpySampler(PoolSampler):
    def __init__(self):
        self.seen = []

    def take(self, k, pool_index, pool, generator):
        self.seen.append((pool_index, int(pool.shape[0]), k))
        return super().take(k, pool_index, pool, generator)


def test_corocl_sampling_rules():
    # city: 3 OoD pixels, 4 void, 9 inlier; coco: 6 objects, 2 padding, 8 background
    city_gt = torch.tensor([254] * 3 + [255] * 4 + [5] * 9).reshape(1, 4, 4)
    coco_gt = torch.tensor([254] * 6 + [255] * 2 + [0] * 8).reshape(1, 4, 4)
    proj = torch.randn(1, 8, 4, 4, generator=torch.Generator().manual_seed(1))
    spy = _SpySampler()
    corocl_loss(proj, city_gt, proj.flip(0), coco_gt, max_views=512, sampler=spy)
    # pools in order city-OoD, city-inlier, COCO-OoD, COCO-inlier; N = min over pools and max_views
    assert spy.seen == [(0, 3, 3), (1, 9, 3), (2, 6, 3), (3, 8, 3)]
    spy = _SpySampler()
    corocl_loss(proj, city_gt, proj, coco_gt, max_views=2, sampler=spy)
    assert [k for *_, k in spy.seen] == [2, 2, 2, 2]


def test_corocl_labels_are_nearest_resized_to_the_projection():
    city_gt = torch.zeros(1, 8, 8, dtype=torch.long)
    city_gt[0, :4, :4] = 254  # one quarter -> exactly one 4x4 projection cell... times 4 at stride 2
    coco_gt = torch.zeros(1, 8, 8, dtype=torch.long)
    coco_gt[0, 4:, 4:] = 254
    spy = _SpySampler()
    corocl_loss(torch.randn(1, 4, 4, 4), city_gt, torch.randn(1, 4, 4, 4), coco_gt, sampler=spy)
    assert [n for _, n, _ in spy.seen] == [4, 12, 4, 12]


def test_corocl_is_invariant_to_sampling_when_pools_fit():
    g = torch.Generator().manual_seed(3)
    city_gt = torch.randint(0, 3, (2, 6, 6), generator=g)
    city_gt[city_gt == 2] = 254
    coco_gt = torch.randint(0, 2, (2, 6, 6), generator=g) * 254
    city, coco = torch.randn(2, 5, 6, 6, generator=g), torch.randn(2, 5, 6, 6, generator=g)
    n_min = min(int((city_gt == 254).sum()), int((city_gt != 254).sum()),
                int((coco_gt == 254).sum()), int((coco_gt == 0).sum()))
    # with max_views >= every pool, every pool except the smallest is subsampled; the smallest
    # pool's samples are all taken, so use equal-size check on a fixed-N case instead:
    a = corocl_loss(city, city_gt, coco, coco_gt, max_views=n_min, generator=torch.Generator().manual_seed(0))
    b = corocl_loss(city, city_gt, coco, coco_gt, max_views=n_min, generator=torch.Generator().manual_seed(0))
    c = corocl_loss(city, city_gt, coco, coco_gt, max_views=n_min, generator=torch.Generator().manual_seed(9))
    assert float(a) == float(b)  # same generator -> same samples
    assert float(a) != float(c)  # different generator -> different samples of the larger pools


def test_corocl_without_ood_is_grad_safe_zero():
    city = torch.randn(2, 4, 3, 3, requires_grad=True)
    coco = torch.randn(2, 4, 3, 3, requires_grad=True)
    city_gt = torch.zeros(2, 3, 3, dtype=torch.long)  # nothing pasted
    coco_gt = torch.full((2, 3, 3), 254)
    loss = corocl_loss(city, city_gt, coco, coco_gt)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert city.grad is not None and float(city.grad.abs().sum()) == 0.0


def test_corocl_single_image_batch_keeps_batch_dimension():
    # the reference .squeeze()d [1,1,H,W] labels to [H,W] and crashed with one image per rank
    gt = torch.zeros(1, 4, 4, dtype=torch.long)
    gt[0, 0, :2] = 254
    loss = corocl_loss(torch.randn(1, 3, 4, 4), gt, torch.randn(1, 3, 4, 4), gt)
    assert torch.isfinite(loss) and float(loss) > 0


def test_distributed_sampler_matches_local_in_one_process():
    pools = [torch.randn(n, 3) for n in (5, 9, 7, 11)]
    local, dist_s = PoolSampler(), DistributedPoolSampler(DistContext())
    assert dist_s.sizes(pools) == local.sizes(pools) == [5, 9, 7, 11]
    for i, p in enumerate(pools):
        a = local.take(4, i, p, torch.Generator().manual_seed(i))
        b = dist_s.take(4, i, p, torch.Generator().manual_seed(i))
        assert torch.equal(a, b)
