"""Mixed precision on CPU: bf16 autocast through inference, training, checkpoints and the metrics.

PyTorch's CPU autocast supports bf16, so the dtype flow that oodbench's CUDA users rely on is
checked here, without a GPU: the network runs in bf16 (asserted with a forward hook, so a silently
disabled autocast fails), while the anomaly scores reaching the store and the metric code are
float32 (float16 for SMIYC, through the overflow guard), the training losses are float32, and the
parameters, optimizer state and checkpoints stay float32. Every test also has a ``cuda`` variant
(bf16 and fp16 autocast where they apply), run by ``benchmarks/gpu_check.sh`` on a GPU machine and
skipped elsewhere.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from oodbench import segmenters

CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
#: (device, autocast dtype name) of the inference tests; fp16 autocast is CUDA-only
INFER = [("cpu", "bf16"), pytest.param("cuda", "bf16", marks=CUDA), pytest.param("cuda", "fp16", marks=CUDA)]
TRAIN = ["cpu", pytest.param("cuda", marks=CUDA)]
LOW = {"bf16": torch.bfloat16, "fp16": torch.float16}


# ------------------------------------------------------------------------------------ helpers
def _first_conv(module: torch.nn.Module) -> torch.nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))


def _record_conv_dtypes(module: torch.nn.Module) -> list[torch.dtype]:
    """Output dtypes of the first convolution of ``module``: proof that autocast was on."""
    seen: list[torch.dtype] = []
    _first_conv(module).register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


@pytest.fixture
def metric_inputs(monkeypatch):
    """Dtypes of the score maps handed to the pixel (and component) metric accumulators."""
    from oodbench import metrics as M

    seen: list[np.dtype] = []
    real = M.build_protocol

    def spy(name, **kwargs):
        acc = real(name, **kwargs)
        update = acc.update

        def recording_update(scores, labels, **kw):
            seen.append(np.asarray(scores).dtype)
            return update(scores, labels, **kw)

        acc.update = recording_update
        return acc

    monkeypatch.setattr(M, "build_protocol", spy)
    return seen


# ------------------------------------------------------------------------------------ inference
def _energy():
    from oodbench.methods import build

    torch.manual_seed(0)
    return build("energy", segmenter="deeplabv3plus_small")


@pytest.mark.parametrize("device,amp", INFER)
def test_run_under_autocast_stores_and_evaluates_float32(synth_root, tmp_path, metric_inputs, device, amp):
    """``oodbench run --amp``: the network runs in low precision, the store and the metric code get
    float32, and the metrics stay close to the float32 run's."""
    from oodbench.datasets import get_split
    from oodbench.runner import RunConfig, run_method
    from oodbench.store import PredictionStore

    split = get_split("fishyscapes-laf-val", synth_root)
    results, convs = {}, {}
    for mode in ("fp32", amp):
        method = _energy()
        convs[mode] = _record_conv_dtypes(method.model)
        cfg = RunConfig(out=tmp_path / mode / "out", results_dir=tmp_path / mode / "res", device=device, allow_untrained=True,
                        batch_size=4, amp=None if mode == "fp32" else amp, progress=False)
        results[mode] = run_method("energy", [split], cfg, method=method)[0].metrics
    assert set(convs["fp32"]) == {torch.float32}
    assert set(convs[amp]) == {LOW[amp]}, "autocast was not applied to the network"
    stored = PredictionStore(tmp_path / amp / "out", "energy").read_anomaly(split.key, split.frame_ids()[0])
    assert stored.dtype == np.float32
    assert metric_inputs and set(metric_inputs) == {np.dtype(np.float32)}
    for key in ("AP", "FPR95", "AUROC"):
        a, b = results["fp32"].get(key), results[amp].get(key)
        if a is not None:
            assert abs(a - b) <= 0.05, (key, a, b)


class _HugeLogits(torch.nn.Module):
    """Bounded logits of about +-2e4: representable in fp16 and bf16, but their max-logit score
    leaves the float16 guard's identity range (|s| <= 8192)."""

    num_classes = 4

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x)) * 2.0e4


@pytest.mark.parametrize("device,amp", INFER)
def test_smiyc_scores_pass_the_float16_guard_under_autocast(synth_root, tmp_path, metric_inputs, device, amp):
    """SMIYC keys are stored as float16: scores beyond its range are mapped by the guard (never
    inf), whatever the autocast state, and the metric code receives the documented float16."""
    from oodbench.datasets import get_split
    from oodbench.methods import build
    from oodbench.runner import RunConfig, run_method
    from oodbench.store import PredictionStore

    split = get_split("smiyc-anomaly-val", synth_root)
    assert split.score_dtype == "float16"
    net = _HugeLogits()
    convs = _record_conv_dtypes(net)
    method = build("maxlogit", segmenter=net)
    cfg = RunConfig(out=tmp_path / "out", results_dir=tmp_path / "res", device=device, batch_size=2, amp=amp,
                    progress=False)
    (result,) = run_method("maxlogit", [split], cfg, method=method)
    assert set(convs) == {LOW[amp]}
    assert result.notes["run"]["float16_guarded"] == len(split.frame_ids())
    stored = PredictionStore(tmp_path / "out", "maxlogit").read_anomaly(split.key, split.frame_ids()[0])
    assert stored.dtype == np.float16 and np.isfinite(stored).all() and np.abs(stored).max() > 8192
    assert metric_inputs and set(metric_inputs) == {np.dtype(np.float16)}
    assert all(np.isfinite(v) for v in result.metrics.values() if isinstance(v, float))


# ------------------------------------------------------------------------------------ training



def _rpl_cfg(out, device: str, amp: bool, **kw):
    from oodbench.methods.rpl.train import RPLTrainConfig

    base = dict(out_dir=str(out), segmenter="deeplabv3plus_small", crop_size=(32, 32), batch_size=2, epochs=2,
                ckpt_every=2, num_workers=0, progress=False, seed=3, max_views=64, val_splits="none",
                device=device, amp=amp, amp_cpu=amp)
    base.update(kw)
    return RPLTrainConfig(**base)


def _rpl_net():
    from oodbench.methods.rpl.model import RPLNet

    torch.manual_seed(0)
    return RPLNet(segmenters.build("deeplabv3plus_small"), projector=True)


@pytest.fixture
def loss_dtypes(monkeypatch):
    """Dtypes of the loss terms the RPL trainer back-propagates."""
    import oodbench.methods.rpl.train as T

    seen: list[torch.dtype] = []
    parts, corocl = T.rpl_loss_parts, T.corocl_loss

    def spy_parts(*a, **k):
        out = parts(*a, **k)
        seen.extend(out[key].dtype for key in ("ce", "reg", "energy"))
        return out

    def spy_corocl(*a, **k):
        out = corocl(*a, **k)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(T, "rpl_loss_parts", spy_parts)
    monkeypatch.setattr(T, "corocl_loss", spy_corocl)
    return seen


@pytest.mark.parametrize("device", TRAIN)
def test_rpl_step_under_bf16_autocast_keeps_losses_and_state_float32(tiny_city, tmp_path, coco_pairs, loss_dtypes, device):
    from oodbench.methods.rpl.train import RPLTrainer
    from oodbench.training.logs import read_csv_log

    rows = {}
    for amp in (False, True):
        loss_dtypes.clear()
        net = _rpl_net()
        convs = _record_conv_dtypes(net.branch1.residual_block)
        trainer = RPLTrainer(_rpl_cfg(tmp_path / str(amp), device, amp, max_iters=2), model=net, city=tiny_city(4),
                             coco=coco_pairs)
        result = trainer.fit()
        assert result.iteration == 2
        assert set(convs) == {torch.bfloat16 if amp else torch.float32}
        assert loss_dtypes and set(loss_dtypes) == {torch.float32}, "a loss was computed in low precision"
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
        trained = [p for p in trainer.model.parameters() if p.grad is not None]
        assert trained and all(p.grad.dtype == torch.float32 for p in trained)
        assert all(v.dtype == torch.float32 for s in trainer.optimizer.state.values() for k, v in s.items()
                   if torch.is_tensor(v) and k != "step")
        if device == "cuda":  # the CUDA-only switches: channels_last weights, pinned host batches
            conv = _first_conv(trainer.model.branch1.residual_block)
            assert conv.weight.is_contiguous(memory_format=torch.channels_last)
            assert all(t.is_pinned() for t in next(iter(trainer.make_batches(0, 0))))
        rows[amp] = read_csv_log(tmp_path / str(amp) / "train.csv")
    assert any(r["corocl_active"] == "1" for r in rows[True])
    for a, b in zip(rows[False], rows[True]):  # bf16 rounding moves the losses, but only a little
        for key in ("ce", "reg", "energy", "corocl"):
            x, y = float(a[key]), float(b[key])
            assert abs(x - y) <= 0.05 * max(abs(x), 1e-3), (key, x, y)


@pytest.mark.parametrize("device", TRAIN)
def test_bf16_checkpoint_is_float32_and_resume_restores_it(tiny_city, tmp_path, coco_pairs, monkeypatch, device):
    """A run stopped and resumed under bf16 autocast: the checkpoint holds float32 weights and
    optimizer state, resuming restores exactly what was saved, and the resumed run ends where the
    uninterrupted one does (bit for bit on CPU; CUDA kernels such as the bilinear upsampling's
    backward add in a non-deterministic order, so there the logged losses must agree closely)."""
    from oodbench.methods.rpl.train import RPLTrainer, train_rpl
    from oodbench.training.distributed import unwrap
    from oodbench.training.logs import read_csv_log

    loaded = []
    real_load = RPLTrainer.load_payload

    def recording_load(self, payload):
        saved = copy.deepcopy(payload)  # the optimizer keeps (and steps) the loaded 'step' tensors
        real_load(self, payload)
        loaded.append((saved, copy.deepcopy(unwrap(self.model).state_dict()), copy.deepcopy(self.optimizer.state_dict())))

    monkeypatch.setattr(RPLTrainer, "load_payload", recording_load)

    def run(out, **kw):
        return train_rpl(_rpl_cfg(out, device, True, max_iters=4, **kw), model=_rpl_net(), city=tiny_city(4),
                         coco=coco_pairs)

    run(tmp_path / "full")
    assert run(tmp_path / "res", stop_after=3).stopped_early
    assert run(tmp_path / "res").resumed_from == 2
    (payload, model_state, optim_state), = loaded
    assert payload["iteration"] == 2
    saved = [v for v in payload["model"].values() if v.is_floating_point()]
    saved += [v for s in payload["optimizer"]["state"].values() for k, v in s.items() if torch.is_tensor(v) and k != "step"]
    assert saved and all(v.dtype == torch.float32 for v in saved)
    for k, v in payload["model"].items():
        assert torch.equal(model_state[k], v.to(model_state[k].device)), k
    for i, s in payload["optimizer"]["state"].items():
        for k, v in s.items():
            assert torch.equal(optim_state["state"][i][k].cpu(), v.cpu()), (i, k)
    cols = ("iteration", "ce", "reg", "energy", "corocl", "total")
    rows = [[tuple(r[c] for c in cols) for r in read_csv_log(tmp_path / name / "train.csv")] for name in ("full", "res")]
    assert len(rows[0]) == len(rows[1]) == 4
    if device == "cpu":
        assert rows[0] == rows[1]
        full = torch.load(tmp_path / "full" / "last.pth", weights_only=True)["model"]
        res = torch.load(tmp_path / "res" / "last.pth", weights_only=True)["model"]
        assert all(torch.equal(v, res[k]) for k, v in full.items())
    else:
        for a, b in zip(*rows):
            assert a[0] == b[0] and abs(float(a[-1]) - float(b[-1])) <= 1e-3 * abs(float(a[-1])), (a, b)


@pytest.mark.parametrize("device", TRAIN)
def test_closed_set_trainer_under_bf16_autocast(tiny_city, tmp_path, monkeypatch, device):
    """``train-segmenter --amp-cpu`` on CPU (plain ``--amp`` on CUDA): the forward runs in bf16, the
    cross-entropy in float32, and the mIoU validation under autocast gives a finite number."""
    import torch.nn.functional as F

    import oodbench.training.segmenter as S

    seen = []
    real_ce = F.cross_entropy

    def recording_ce(logits, *a, **k):
        seen.append(logits.dtype)
        return real_ce(logits, *a, **k)

    monkeypatch.setattr(S.F, "cross_entropy", recording_ce)
    torch.manual_seed(0)
    model = segmenters.build("deeplabv3plus_small", num_classes=19)
    convs = _record_conv_dtypes(model)
    cfg = S.SegmenterTrainConfig(out_dir=str(tmp_path), model="deeplabv3plus_small", crop_size=(32, 32), batch_size=2,
                                 max_iters=2, ckpt_every=2, num_workers=0, progress=False, seed=4, device=device,
                                 amp=True, amp_cpu=True)
    result = S.train_segmenter(cfg, train_data=tiny_city(4), val_data=tiny_city(4), model=model)
    assert result.iteration == 2 and np.isfinite(result.last_val["miou"])
    assert set(convs) == {torch.bfloat16} and seen and set(seen) == {torch.float32}
    ckpt = torch.load(tmp_path / "last.pth", weights_only=True)
    assert all(v.dtype == torch.float32 for v in ckpt["model_state"].values() if v.is_floating_point())


def test_cpu_autocast_is_opt_in():
    """``--amp`` (on by default) means bf16 on CUDA; CPU training stays fp32 unless ``--amp-cpu``."""
    from oodbench.training.device import amp_dtype, autocast

    cpu = torch.device("cpu")
    assert amp_dtype(cpu, True) is None and amp_dtype(cpu, False, cpu=True) is None
    assert amp_dtype(cpu, True, cpu=True) == torch.bfloat16
    assert amp_dtype(torch.device("cuda"), True) == torch.bfloat16
    with autocast(cpu, True, cpu=True):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16


def test_corocl_on_bf16_projections_is_float32_also_with_an_empty_pool():
    """Autocast hands CoroCL bf16 projections; its value -- the grad-safe zero of an empty pool
    included -- is float32 like every other loss term."""
    from oodbench.methods.rpl.losses import corocl_loss

    torch.manual_seed(0)
    proj = torch.randn(2, 8, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    gt = torch.zeros(2, 16, 16, dtype=torch.uint8)
    gt[:, 4:12, 4:12] = 254
    assert corocl_loss(proj, gt, proj.detach().flip(0), gt, max_views=8).dtype == torch.float32
    no_objects = torch.zeros_like(gt)
    zero = corocl_loss(proj, no_objects, proj.detach(), no_objects)
    assert zero.dtype == torch.float32 and float(zero.detach()) == 0.0
    zero.backward()
    assert proj.grad is not None and not proj.grad.any()
