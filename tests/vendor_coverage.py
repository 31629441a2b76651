"""The aten operations a short pinned training run and evaluation call, as a stage calls them:
a demo-sized MyGO trained for 2 epochs with validation (mygo.training.train: fast kernels,
fused Adam, clipping), saved, loaded as evaluate loads it and ranked on its test triples.
Prints them as a JSON list (tests/test_vendor_ops.py compares them with what
tests/vendor_ops.py covers).

    python tests/vendor_coverage.py
"""
from mygo import reproducible

reproducible.apply(True)

import json  # noqa: E402  (after the pin, like every stage)
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_model  # noqa: E402
from vendor_ops import Calls  # noqa: E402  (the cases' own recorder of aten operations)

from mygo.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from mygo.evaluation import compute_ranks, metrics_from_ranks  # noqa: E402
from mygo.training import TrainParams, train  # noqa: E402


def main() -> None:
    reproducible.check()
    N, R = 120, 3
    g = np.random.default_rng(0)
    triples = np.stack([g.integers(0, N, 600), g.integers(0, R, 600), g.integers(0, N, 600)], 1)
    train_triples, valid, test = triples[:500], triples[500:550], triples[550:]
    model = tiny_model(num_entities=N, num_relations=R, dim=32, emb_dropout=0.2, hidden_dropout=0.3)
    config = TrainParams(device="cpu", epochs=2, batch_size=64, eval_every=1, contrastive_size=64, mu=1.0,
                         label_smoothing=0.1, amp=True)
    calls = Calls()
    with tempfile.TemporaryDirectory() as tmp, calls:
        train(model, config, train_triples, valid, resume_path=Path(tmp) / "resume.pt", progress=False)
        save_checkpoint(Path(tmp) / "model.pt", model)
        loaded, _ = load_checkpoint(Path(tmp) / "model.pt")
        metrics_from_ranks(compute_ranks(loaded, test, [train_triples, valid, test], 32, progress=False))
    print(json.dumps(sorted(calls.ops)))


if __name__ == "__main__":
    main()
