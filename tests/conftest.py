"""Shared test fixtures: the real console script, the synthetic benchmark, the shared folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # plain helper modules: `from _helpers import ...`

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def console_script() -> str:
    """The installed ``oodbench`` console script next to this interpreter."""
    exe = Path(sys.executable).parent / "oodbench"
    if exe.exists():
        return str(exe)
    found = shutil.which("oodbench")
    if not found:
        pytest.fail("the oodbench console script is not installed (pip install -e . or tox)")
    return found


def run_cli(*args: str, env: dict | None = None, cwd: str | os.PathLike | None = None,
            check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([console_script(), *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"oodbench {' '.join(map(str, args))} failed ({proc.returncode}):\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def load_script(relpath: str):
    """Import a repository script that is not part of the package (``tools/``, ``benchmarks/``,
    ``tests/fixtures_gen/``) by its path, registered in ``sys.modules`` (dataclasses need it)."""
    import importlib.util

    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(f"oodbench_script_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def script():
    """``script("tools/update_readme_demo.py")`` -> the module (see :func:`load_script`)."""
    return load_script


@pytest.fixture(scope="session")
def cli():
    """Run the real ``oodbench`` console script: ``cli("list", "methods").stdout``."""
    return run_cli


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """The synthetic benchmark (official layouts), generated once per test session."""
    from oodbench.datasets.synth import generate

    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, seed=0)
    return out


FIXTURE_GENERATORS = (ROOT / "tests" / "fixtures_gen" / "make_fixtures.py",
                      SHARED / "fixtures" / "make_fixtures.py")


@pytest.fixture(scope="session")
def fixture_tree(tmp_path_factory) -> tuple[Path, dict]:
    """The official-layout fixture tree of ``shared/fixtures`` (generated once) and its per-frame facts.

    The generator is kept in ``tests/fixtures_gen/`` so this works without ``../shared``.
    """
    import json

    script = next((p for p in FIXTURE_GENERATORS if p.is_file()), None)
    if script is None:
        pytest.skip(f"fixture generator not found at {FIXTURE_GENERATORS[0]}")
    out = tmp_path_factory.mktemp("fixtree") / "data"   # no 't5'/'t6' in the path (DenseHybrid rule)
    facts = out.parent / "facts.json"
    subprocess.run([sys.executable, str(script), str(out), "--write-manifest", str(facts)],
                   check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return out, json.loads(facts.read_text())["frames"]


@pytest.fixture(scope="session")
def shared_dir() -> Path | None:
    return SHARED if SHARED.is_dir() else None


class CompatGolden:
    """``tests/data/compat``: the official checkpoint manifests and the golden outputs of the official
    model classes (copies of ``../shared/compat``, provenance in its README), with the checks every
    loader test applies to them."""

    dir = ROOT / "tests" / "data" / "compat"
    shared = SHARED / "compat"
    #: float64 sum of the golden input ``default_rng(1).standard_normal((1, 3, 96, 160))`` in float32
    input_sum = -416.74429652075924
    #: parity tolerance: ``max|ours - golden| <= tol * max|golden|`` (the issues' 1e-4)
    tol = 1e-4
    #: compat/README.md "Check values for recipe v2": conv sum of squares, BN running_var sum,
    #: sum of all drawn floats
    recipe_checks = {
        "nvidia_wrn38_deeplabv3plus_cityscapes_best": (34061.36924, 19416.339, 41203.14207),
        "vainf_deeplabv3plus_mobilenet_os16": (17696.13291, 15881.15771, 33656.56305),
        "vainf_deeplabv3plus_resnet101_os16": (54507.54438, 48945.86897, 103706.1077),
        "rpl_corocl_rev3": (36204.06824, 20535.00581, 43549.02093),
        "rpl_res": (35900.17528, 20549.12262, 43592.42022),
    }

    def manifest(self, name: str) -> dict:
        from oodbench.segmenters.recipe import load_manifest

        return load_manifest(self.dir / f"{name}.json")

    def input(self):
        import numpy as np
        import torch

        x = np.random.default_rng(1).standard_normal((1, 3, 96, 160)).astype(np.float32)
        assert float(x.astype(np.float64).sum()) == pytest.approx(self.input_sum, rel=0, abs=1e-9)
        return torch.from_numpy(x)

    def load(self, name: str) -> dict:
        import numpy as np

        z = np.load(self.dir / "golden" / f"golden_{name}.npz")
        assert float(z["input_sum"]) == pytest.approx(self.input_sum, abs=1e-9)
        assert list(z["input_shape"]) == [1, 3, 96, 160]
        assert int(z["weight_seed"]) == 0 and int(z["input_seed"]) == 1
        return {k: z[k] for k in z.files}

    def assert_parity(self, ours, golden, what: str) -> float:
        import numpy as np

        ours = ours.detach().float().numpy()
        assert ours.shape == golden.shape, f"{what}: shape {ours.shape} vs golden {golden.shape}"
        rel = float(np.abs(ours - golden).max() / np.abs(golden).max())
        assert rel <= self.tol, f"{what}: max|ours - golden| = {rel:.3g} x max|golden| (tolerance {self.tol})"
        return rel

    def check_recipe(self, manifest: dict, state_dict) -> None:
        """The recipe-drawn weights are the ones the golden outputs were computed with."""
        from oodbench.segmenters.recipe import recipe_check_values

        conv_sumsq, bn_var, total = self.recipe_checks[manifest["name"]]
        groups = recipe_check_values(state_dict)
        assert groups["conv"]["sumsq"] == pytest.approx(conv_sumsq, rel=1e-8)
        assert groups["bn_running_var"]["sum"] == pytest.approx(bn_var, rel=1e-7)
        assert groups["all"]["sum"] == pytest.approx(total, rel=1e-7)
        assert groups["all"]["elements"] == manifest["counts"]["float_elements_drawn_by_recipe"]


@pytest.fixture(scope="session")
def compat() -> CompatGolden:
    """Manifests, golden outputs and parity checks of ``tests/data/compat``."""
    return CompatGolden()


@pytest.fixture(autouse=True)
def _seed_global_generators():
    """Every test starts from the same global RNG state (torch, numpy's legacy, ``random``).

    Without it, a test that draws from ``torch.randn`` (or ``np.random.rand``) without a generator
    gets inputs that depend on which tests ran before it, so a failure seen in the full suite could
    not be replayed with ``-k``. Tests that need their own streams still create seeded generators.
    """
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    if "torch" in sys.modules:  # never import torch for tests that do not use it
        sys.modules["torch"].manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_city():
    """The :class:`_helpers.TinyCity` class: ``tiny_city(n, h=40, w=56)`` random training frames."""
    from _helpers import TinyCity

    return TinyCity


@pytest.fixture(scope="session")
def coco_pairs(tmp_path_factory):
    """Stand-in for CocoOutliers: (image path, 0/254 mask path) pairs with one object each."""
    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("coco")
    pairs = []
    for i in range(4):
        rng = np.random.default_rng(50 + i)
        img = rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)
        m = np.zeros((36, 44), np.uint8)
        m[8:26, 10 + i : 30 + i] = 254
        Image.fromarray(img).save(d / f"{i:012d}.jpg", quality=95)
        Image.fromarray(m).save(d / f"{i:012d}.png")
        pairs.append((d / f"{i:012d}.jpg", d / f"{i:012d}.png"))
    return pairs


@pytest.fixture(scope="session")
def segmenter_ckpt(tmp_path_factory):
    """Weights for the small segmenter (a seeded init: CLI flows need a file, not a good model)."""
    import torch

    from oodbench import segmenters

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "segmenter.pth"
    segmenters.save_checkpoint(segmenters.build("deeplabv3plus_small"), path)
    return path


@pytest.fixture(scope="session")
def rpl_synth(synth_root, segmenter_ckpt, tmp_path_factory):
    """RPL training inputs on the synthetic benchmark: (data root, a private copy of its COCO part
    with outlier-exposure masks, seeded closed-set weights of the small segmenter)."""
    from oodbench.datasets.coco import prepare_coco_ood

    coco = tmp_path_factory.mktemp("rpl_coco") / "coco"
    shutil.copytree(synth_root / "coco", coco)
    prepare_coco_ood(coco, progress=False)
    return synth_root, coco, segmenter_ckpt
