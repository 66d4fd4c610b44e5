r"""RPL and CoroCL training losses (exactly as the official code computes them).

Notation (docs/rpl-official.md §4): :math:`z` = ``out2`` (logits with the RPL residual), :math:`z^0` =
``out1`` (frozen closed-set logits), :math:`y` the mixed label map; :math:`\Omega_{ood} = \{y=254\}`
(pasted objects), :math:`\Omega_{in} = \{y \notin \{254, 255\}\}`.

**RPL loss** (``yyliu01/RPL:rpl_corocl.code/loss/PositiveEnergy.py``; weights ``trainer.py``)

.. math::
    L_{ce} &= \operatorname{mean}_{\Omega_{in}} \mathrm{CE}\big(z, \arg\max_c z^0_c\big)
    \qquad\text{(pseudo-labels, not ground truth)}\\
    L_{reg} &= \operatorname{mean}_{\Omega_{in}} \big(H(p) - H(q)\big)^2,\quad
    p = \max(\mathrm{softmax}(z), 10^{-7}),\ q = \max(\mathrm{softmax}(z^0), 10^{-7}),\
    H(p) = -\textstyle\sum_c p_c \ln p_c\\
    L_{energy} &= \operatorname{mean}_{\Omega_{ood}} \mathrm{ReLU}\big(\operatorname{logsumexp}_c z_c\big)
    \qquad (0 \text{ when } \Omega_{ood} = \emptyset)\\
    L_{RPL} &= L_{ce} + L_{reg} + 0.05\, L_{energy}

The reference computes ``log(sum(exp(z)))`` naively; here it is ``torch.logsumexp`` (same value,
no overflow; §12.17). :math:`z^0` carries no gradient (everything upstream of it is frozen).

**CoroCL** (``yyliu01/RPL:rpl_corocl.code/loss/CoroCL.py``, after tfzhou/ContrastiveSeg): embeddings
are L2-normalised per pixel; labels are nearest-resized to the embedding size; four pools --
city-OoD (254), city-inlier (not 254/255), COCO-OoD (254) and COCO-inlier (COCO background 0; the
255 padding is excluded); :math:`N = \min(\text{max\_views}, |\text{each pool}|)` (0 -> loss 0).
Anchors: N city-OoD + N city-inlier (labels 1, 0); contrast set: the anchors, then N COCO-OoD and
N COCO-inlier (labels 1, 0, 1, 0). With :math:`s_{ij} = \langle a_i, c_j\rangle/\tau` minus the
detached row maximum, positives :math:`M_{ij} = [l_i = l_j]` without self-pairs, negatives
:math:`1 - [l_i = l_j]`:

.. math::
    \log p_{ij} = s_{ij} - \ln\Big(e^{s_{ij}} + \sum_{k \in neg(i)} e^{s_{ik}}\Big),\qquad
    L_{CoroCL} = -\frac{1}{2N}\sum_i \frac{\sum_j M_{ij}\log p_{ij}}{\sum_j M_{ij}}

with :math:`\tau = 0.10` and no extra :math:`\tau/\tau_{base}` factor (docs/rpl-official.md §4.2 step 9).

**Anchor and contrast sets** (supplementary Table 3) are configurable: ``anchors`` and
``contrast`` name pools from :data:`POOLS`. The defaults are the reference's (anchors = the city
pools, contrast = all four). In general N is the minimum over the pools used; each used pool is
sampled once, in :data:`POOLS` order; the contrast set starts with the anchor samples of the anchor
pools it contains (the same samples, whose self-pairs are removed from the positives), followed by
its other pools in :data:`POOLS` order. With the defaults this is exactly the reference's
computation (same draws, same order). An anchor without any positive (possible only when a pool
holds a single sample) contributes 0 instead of the reference's NaN.
Pool sampling is ``randperm(|pool|)[:N]`` per pool in the order city-OoD, city-inlier, COCO-OoD,
COCO-inlier, from ``generator``; :class:`DistributedPoolSampler` draws the same indices over the
concatenation of every rank's pools (rank order), so N ranks sample exactly what one process
with the whole batch samples.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "OOD_LABEL",
    "IGNORE_LABEL",
    "POOLS",
    "DEFAULT_ANCHORS",
    "DEFAULT_CONTRAST",
    "parse_pools",
    "ENERGY_WEIGHT",
    "rpl_loss",
    "rpl_loss_parts",
    "corocl_loss",
    "contrastive_from_samples",
    "PoolSampler",
    "DistributedPoolSampler",
]

OOD_LABEL = 254
IGNORE_LABEL = 255
ENERGY_WEIGHT = 0.05

#: CoroCL sample pools: name -> OoD (1) or inlier (0); city = the city-mix image (pasted objects are
#: the OoD pixels), coco = the COCO context image (objects OoD, background inlier)
POOLS: dict[str, int] = {"city-ood": 1, "city-inlier": 0, "coco-ood": 1, "coco-inlier": 0}
DEFAULT_ANCHORS = ("city-ood", "city-inlier")
DEFAULT_CONTRAST = ("city-ood", "city-inlier", "coco-ood", "coco-inlier")


def parse_pools(value: str | Sequence[str], flag: str = "--anchors") -> tuple[str, ...]:
    """``"city-ood, city-inlier"`` (or a list) -> pool names in :data:`POOLS` order (``ValueError``
    names ``flag`` for an unknown or empty set)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {str(v).strip() for v in items if str(v).strip()}
    unknown = sorted(names - set(POOLS))
    if unknown or not names:
        raise ValueError(f"{flag}: {'unknown pools ' + ', '.join(unknown) if unknown else 'no pool named'}; "
                         f"choose a comma-separated subset of {', '.join(POOLS)}")
    return tuple(p for p in POOLS if p in names)


def rpl_loss_parts(out1: torch.Tensor, out2: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-term pixel *sums* and pixel counts of the RPL loss (for global masked means).

    Returns ``{'ce', 'reg', 'energy'}`` sums (with gradient w.r.t. ``out2``) and ``{'n_in', 'n_ood'}``.
    """
    if out1.shape != out2.shape or out2.dim() != 4:
        raise ValueError(f"out1 {tuple(out1.shape)} and out2 {tuple(out2.shape)} must both be [B,C,H,W]")
    if target.shape != (out2.shape[0],) + tuple(out2.shape[2:]):
        raise ValueError(f"target {tuple(target.shape)} does not match logits {tuple(out2.shape)}")
    z = out2.float()
    z0 = out1.detach().float()
    inlier = (target != OOD_LABEL) & (target != IGNORE_LABEL)
    ood = target == OOD_LABEL
    pseudo = z0.argmax(dim=1)
    ce = F.cross_entropy(z, pseudo, reduction="none")
    p = torch.softmax(z, dim=1).clamp(min=1e-7)
    q = torch.softmax(z0, dim=1).clamp(min=1e-7)
    h_p = -(p * p.log()).sum(dim=1)
    h_q = -(q * q.log()).sum(dim=1)
    reg = (h_p - h_q) ** 2
    energy = F.relu(torch.logsumexp(z, dim=1))
    zero = z.sum() * 0.0  # grad-safe zero keeps the graph connected on empty masks
    return {
        "ce": ce[inlier].sum() if inlier.any() else zero,
        "reg": reg[inlier].sum() if inlier.any() else zero,
        "energy": energy[ood].sum() if ood.any() else zero,
        "n_in": inlier.sum(),
        "n_ood": ood.sum(),
    }


def rpl_loss(out1: torch.Tensor, out2: torch.Tensor, target: torch.Tensor,
             energy_weight: float = ENERGY_WEIGHT) -> dict[str, torch.Tensor]:
    """The RPL loss terms as masked means over this batch: ``{'ce', 'reg', 'energy', 'total'}``."""
    parts = rpl_loss_parts(out1, out2, target)
    n_in, n_ood = parts["n_in"].clamp(min=1), parts["n_ood"].clamp(min=1)
    out = {"ce": parts["ce"] / n_in, "reg": parts["reg"] / n_in, "energy": parts["energy"] / n_ood}
    out["total"] = out["ce"] + out["reg"] + energy_weight * out["energy"]
    return out


class PoolSampler:
    """Uniform sampling without replacement from this process's pools."""

    def sizes(self, pools: Sequence[torch.Tensor]) -> list[int]:
        return [int(p.shape[0]) for p in pools]

    def take(self, k: int, pool_index: int, pool: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        idx = torch.randperm(pool.shape[0], generator=generator)[:k]
        return pool[idx.to(pool.device)]


class DistributedPoolSampler(PoolSampler):
    """Sampling over the rank-ordered concatenation of every rank's pools (see module doc).

    Every rank draws the same permutation (the generator must be seeded identically), keeps the
    rows it owns, and :func:`~oodbench.training.distributed.gather_rows` (autograd-aware)
    assembles the selection on every rank in the drawn order.
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._per_rank: torch.Tensor | None = None

    def sizes(self, pools: Sequence[torch.Tensor]) -> list[int]:
        import torch.distributed as dist

        local = torch.tensor([int(p.shape[0]) for p in pools], dtype=torch.int64, device=self.ctx.device)
        if not self.ctx.distributed:
            self._per_rank = local[None].cpu()
        else:
            bufs = [torch.zeros_like(local) for _ in range(self.ctx.world_size)]
            dist.all_gather(bufs, local, group=self.ctx.group)
            self._per_rank = torch.stack(bufs).cpu()
        return self._per_rank.sum(0).tolist()

    def take(self, k: int, pool_index: int, pool: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        from oodbench.training.distributed import gather_rows

        if self._per_rank is None:
            raise RuntimeError("DistributedPoolSampler.take() before sizes()")
        per_rank = self._per_rank[:, pool_index]
        perm = torch.randperm(int(per_rank.sum()), generator=generator)[:k]
        starts = torch.cumsum(per_rank, 0) - per_rank
        owner = torch.bucketize(perm, torch.cumsum(per_rank, 0), right=True)
        rank = self.ctx.rank
        mine = perm[owner == rank] - starts[rank]
        counts = torch.bincount(owner, minlength=self.ctx.world_size).tolist()
        rows = gather_rows(pool[mine.to(pool.device)], self.ctx, counts)
        order = torch.argsort(owner, stable=True)  # rows[j] was drawn at position order[j]
        return rows[torch.argsort(order).to(rows.device)]


def _labels_to(size: Sequence[int], gt: torch.Tensor) -> torch.Tensor:
    """Nearest-resize ``[B,H,W]`` labels to ``size`` (batch dimension kept, even for B=1)."""
    if tuple(gt.shape[-2:]) == tuple(size):
        return gt.long()
    return F.interpolate(gt[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


def _flatten(proj: torch.Tensor) -> torch.Tensor:
    return F.normalize(proj.float(), dim=1).permute(0, 2, 3, 1).reshape(-1, proj.shape[1])


def contrastive_from_samples(anchors: torch.Tensor, anchor_labels: torch.Tensor, contrast: torch.Tensor,
                             contrast_labels: torch.Tensor, tau: float = 0.1,
                             self_index: torch.Tensor | None = None) -> torch.Tensor:
    """The supervised contrastive term on given samples (module doc).

    ``self_index[i]``: the position of anchor ``i`` in the contrast set (its self-pair is removed
    from the positives), -1 when it is not there; default: the first ``len(anchors)`` contrasts are
    the anchors themselves (the reference's layout).
    """
    logits = anchors @ contrast.T / tau
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    same = (anchor_labels[:, None] == contrast_labels[None, :]).float()
    neg = 1.0 - same
    pos = same.clone()
    n = anchors.shape[0]
    rows = torch.arange(n, device=pos.device)
    cols = rows if self_index is None else self_index.to(pos.device)
    keep = cols >= 0
    pos[rows[keep], cols[keep]] = 0.0
    exp = logits.exp()
    neg_sum = (exp * neg).sum(dim=1, keepdim=True)
    log_prob = logits - torch.log(exp + neg_sum)
    mean_pos = (pos * log_prob).sum(dim=1) / pos.sum(dim=1).clamp(min=1.0)
    return -mean_pos.mean()


def corocl_loss(city_proj: torch.Tensor, city_gt: torch.Tensor, ood_proj: torch.Tensor, ood_gt: torch.Tensor,
                tau: float = 0.1, max_views: int = 512, generator: torch.Generator | None = None,
                sampler: PoolSampler | None = None, anchors: Sequence[str] = DEFAULT_ANCHORS,
                contrast: Sequence[str] = DEFAULT_CONTRAST) -> torch.Tensor:
    """CoroCL on city-mix embeddings and the COCO context embeddings of the same images.

    Args:
        city_proj, ood_proj: ``[B,D,h,w]`` projections (any scale; L2-normalised here).
        city_gt, ood_gt: ``[B,H,W]`` labels (254 OoD, 255 ignore, else inlier), nearest-resized.
        generator: source of the pool sampling (``None``: torch's global generator).
        sampler: :class:`PoolSampler` (default) or :class:`DistributedPoolSampler`.
        anchors, contrast: pool names (:data:`POOLS`) forming the anchor and the contrast sets.
    Returns:
        A scalar; a grad-safe 0 when a pool is empty (no pasted object, etc.).
    """
    if city_proj.dim() != 4 or ood_proj.shape != city_proj.shape:
        raise ValueError(f"projections must be equal [B,D,h,w], got {tuple(city_proj.shape)} and {tuple(ood_proj.shape)}")
    sampler = sampler or PoolSampler()
    size = city_proj.shape[-2:]
    lc = _labels_to(size, city_gt).reshape(-1)
    lo = _labels_to(size, ood_gt).reshape(-1)
    ec, eo = _flatten(city_proj), _flatten(ood_proj)
    anchor_set, contrast_set = parse_pools(anchors, "--anchors"), parse_pools(contrast, "--contrast")
    used = [p for p in POOLS if p in anchor_set or p in contrast_set]
    masks = {
        "city-ood": (ec, lc == OOD_LABEL),
        "city-inlier": (ec, (lc != OOD_LABEL) & (lc != IGNORE_LABEL)),
        "coco-ood": (eo, lo == OOD_LABEL),
        "coco-inlier": (eo, (lo != OOD_LABEL) & (lo != IGNORE_LABEL)),
    }
    pools = [masks[p][0][masks[p][1]] for p in used]
    n = min([max_views] + sampler.sizes(pools))
    if n <= 0:
        return (city_proj.sum() + ood_proj.sum()).float() * 0.0  # float32 like the loss, also under autocast
    taken = {p: sampler.take(n, i, pool, generator) for i, (p, pool) in enumerate(zip(used, pools))}
    ones = torch.ones(n, dtype=torch.int64, device=city_proj.device)
    a_names = list(anchor_set)
    c_names = [p for p in a_names if p in contrast_set] + [p for p in contrast_set if p not in anchor_set]
    anchor_emb = torch.cat([taken[p] for p in a_names])
    anchor_labels = torch.cat([ones * POOLS[p] for p in a_names])
    contrast_emb = torch.cat([taken[p] for p in c_names])
    contrast_labels = torch.cat([ones * POOLS[p] for p in c_names])
    rank = torch.arange(n, device=city_proj.device)
    self_index = torch.cat([rank + c_names.index(p) * n if p in contrast_set else rank * 0 - 1 for p in a_names])
    return contrastive_from_samples(anchor_emb, anchor_labels, contrast_emb, contrast_labels, tau, self_index)
