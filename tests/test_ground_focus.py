"""Ground-Focus: scores change only outside the convex hull of the predicted road + sidewalk
pixels (there: the image's minimum), bit-identical inside; degenerate hulls; the wrapper passes
everything else through and records itself in the hyperparameters."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from oodbench.methods import GroundFocus, Method, apply_postprocess
from oodbench.methods.postprocess import ground_hull_mask
from scipy.spatial import ConvexHull

ROAD, SIDEWALK, CAR, SKY = 0, 1, 13, 10


def logits_for(classes: np.ndarray, n: int = 19) -> torch.Tensor:
    """One-hot-ish logits ``[1, n, H, W]`` whose argmax is ``classes``."""
    c = torch.from_numpy(classes.astype(np.int64))
    return (torch.nn.functional.one_hot(c, n).permute(2, 0, 1).float() * 5.0).unsqueeze(0)


def closed_hull_brute_force(vertices_xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pixels whose centre (x, y) is in the closed polygon with counter-clockwise integer vertices,
    by exact integer cross products (an implementation independent of the scanline one)."""
    yy, xx = np.mgrid[0:h, 0:w]
    inside = np.ones((h, w), bool)
    for (ax, ay), (bx, by) in zip(vertices_xy, np.roll(vertices_xy, -1, axis=0)):
        inside &= (bx - ax) * (yy - ay) - (by - ay) * (xx - ax) >= 0
    return inside


def test_hand_made_frame_scores_change_only_outside_the_hull():
    h, w = 12, 16
    cls = np.full((h, w), SKY)
    # ground = three corner pixels: road at (y=10, x=1) and (y=10, x=13), sidewalk at (y=4, x=7);
    # the hull is exactly that triangle
    cls[10, 1] = ROAD
    cls[10, 13] = ROAD
    cls[4, 7] = SIDEWALK
    cls[8, 6:9] = CAR  # an object on the road: not ground, but inside the hull
    rng = np.random.default_rng(0)
    anomaly = torch.from_numpy(rng.normal(size=(1, h, w)).astype(np.float32))
    anomaly[0, 8, 7] = 7.5  # the "anomaly" inside the hull
    anomaly[0, 1, 1] = -9.0  # the image minimum, outside the hull
    out = GroundFocus.focus(anomaly.clone(), logits_for(cls))

    expected_inside = closed_hull_brute_force(np.array([[1, 10], [7, 4], [13, 10]]), h, w)  # counter-clockwise
    # hand check of a few pixels of the triangle (x from 1..13 at y=10, only x=7 at y=4)
    assert expected_inside[10, 1:14].all() and not expected_inside[10, 0] and not expected_inside[10, 14]
    assert expected_inside[4].sum() == 1 and expected_inside[4, 7]
    assert expected_inside[8, 6:9].all() and not expected_inside[11].any()
    inside = torch.from_numpy(expected_inside)
    assert torch.equal(out[0][inside], anomaly[0][inside])  # bit-identical inside
    assert out[0, 8, 7] == 7.5
    assert (out[0][~inside] == -9.0).all()  # the image minimum everywhere outside
    assert int((out != anomaly).sum()) > 0


def test_hole_in_the_road_stays_inside_and_each_image_uses_its_own_minimum():
    h, w = 10, 12
    cls = np.full((h, w), SKY)
    cls[5:10, 2:10] = ROAD
    cls[6:8, 4:6] = CAR  # a car on the road
    logits = torch.cat([logits_for(cls), logits_for(cls)])
    anomaly = torch.stack([torch.arange(h * w, dtype=torch.float32).view(h, w) + 100,
                           -torch.arange(h * w, dtype=torch.float32).view(h, w)])
    out = GroundFocus.focus(anomaly.clone(), logits)
    rect = np.zeros((h, w), bool)
    rect[5:10, 2:10] = True
    rect_t = torch.from_numpy(rect)
    for b in range(2):
        assert torch.equal(out[b][rect_t], anomaly[b][rect_t])
        assert (out[b][~rect_t] == anomaly[b].min()).all()
    assert out[0][~rect_t].unique().tolist() == [100.0]
    assert out[1][~rect_t].unique().tolist() == [-(h * w - 1.0)]


def test_degenerate_hulls():
    h, w = 8, 9
    none = np.zeros((h, w), bool)
    assert not ground_hull_mask(none).any()
    one = none.copy()
    one[3, 4] = True
    assert np.array_equal(ground_hull_mask(one), one)
    diag = none.copy()
    diag[[1, 3, 5], [1, 3, 5]] = True  # collinear: the segment (1,1)-(5,5)
    expected = none.copy()
    expected[[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]] = True
    assert np.array_equal(ground_hull_mask(diag), expected)
    steep = none.copy()
    steep[[0, 4], [2, 4]] = True  # segment (x=2,y=0)-(x=4,y=4): centres on it at y=0,2,4 only
    expected = none.copy()
    expected[[0, 2, 4], [2, 3, 4]] = True
    assert np.array_equal(ground_hull_mask(steep), expected)
    row = none.copy()
    row[6, [1, 7]] = True
    expected = none.copy()
    expected[6, 1:8] = True
    assert np.array_equal(ground_hull_mask(row), expected)

    # no ground at all: the whole frame becomes its minimum
    anomaly = torch.tensor([[[3.0, 1.0], [2.0, 5.0]]])
    out = GroundFocus.focus(anomaly, logits_for(np.full((2, 2), SKY)))
    assert (out == 1.0).all()


def test_matches_a_brute_force_hull_on_random_masks():
    rng = np.random.default_rng(1)
    for _ in range(25):
        h, w = int(rng.integers(6, 30)), int(rng.integers(6, 30))
        ground = rng.random((h, w)) < rng.uniform(0.02, 0.3)
        ys, xs = np.nonzero(ground)
        pts = np.stack([xs, ys], 1)
        if len(np.unique(pts, axis=0)) < 3 or np.linalg.matrix_rank(pts - pts[0]) < 2:
            continue
        verts = pts[ConvexHull(pts).vertices]  # all ground pixels, not only the row extremes
        expected = closed_hull_brute_force(verts, h, w)
        got = ground_hull_mask(ground)
        assert np.array_equal(got, expected)
        assert got[ground].all()


class _Fixed(Method):
    name = "fixed"

    def __init__(self, anomaly, logits):
        super().__init__()
        self.anomaly, self.logits = anomaly, logits
        self.model = torch.nn.Identity()
        self.semantic_label_space = "cityscapes19"

    def predict(self, x):
        return self.anomaly.clone(), self.logits

    def hparams(self):
        return {"temperature": 2.0}

    @property
    def checkpoint_sha256(self):
        return "ab" * 32


def test_wrapper_passes_through_and_records_itself():
    cls = np.full((6, 6), SKY)
    cls[3:, 1:5] = ROAD
    inner = _Fixed(torch.linspace(0, 1, 36).view(1, 6, 6), logits_for(cls))
    wrapped = apply_postprocess(inner, "ground-focus")
    assert isinstance(wrapped, GroundFocus)
    assert wrapped.hparams() == {"temperature": 2.0, "postprocess": "ground-focus"}
    assert wrapped.checkpoint_sha256 == "ab" * 32
    assert wrapped.semantic_label_space == "cityscapes19"
    assert wrapped.model is inner.model
    assert wrapped.to("cpu") is wrapped and wrapped.device == torch.device("cpu")
    anomaly, logits = wrapped.predict(torch.zeros(1, 3, 6, 6))
    assert logits is inner.logits  # the closed-set prediction is untouched
    assert torch.equal(anomaly[0, 3:, 1:5], inner.anomaly[0, 3:, 1:5])
    assert (anomaly[0, :3] == 0).all()
    assert apply_postprocess(inner, None) is inner and apply_postprocess(inner, "none") is inner
    with pytest.raises(ValueError, match="ground-focus"):
        apply_postprocess(inner, "sky-focus")


def test_runner_fingerprint_of_a_wrapped_posthoc_method():
    from oodbench.methods import build

    from oodbench.runner import method_fingerprint

    from oodbench.segmenters.base import PretrainedCfg

    torch.manual_seed(0)
    seg = torch.nn.Conv2d(3, 19, 1)
    msp = build("msp", segmenter=seg, pretrained_cfg=PretrainedCfg("conv"))  # declared, not guessed
    gf = apply_postprocess(msp, "ground-focus")
    fp = method_fingerprint(gf, "msp")
    assert fp["hparams"]["postprocess"] == "ground-focus"
    assert fp["semantic_label_space"] == "cityscapes19"
    assert fp != method_fingerprint(msp, "msp")  # a resumed run cannot mix the two
    x = torch.randn(2, 3, 16, 20)
    a_in, l_in = msp.predict(x)
    a_gf, l_gf = gf.predict(x)
    assert torch.equal(l_in, l_gf) and a_gf.shape == a_in.shape
    changed = a_gf != a_in
    assert (a_gf[changed] == a_in.flatten(1).amin(1).view(-1, 1, 1).expand_as(a_in)[changed]).all()
