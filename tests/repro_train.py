"""A few training steps of a demo-sized MyGO in a fresh process, as a stage runs them: the CPU
arithmetic is pinned (or not) before torch loads. Prints the SHA-256 of the trained weights,
torch's CPU capability, the thread count and the code branch MKL runs.

    python tests/repro_train.py pinned|fast
"""
import sys

from mygo import reproducible

reproducible.apply(sys.argv[1] == "pinned")

import hashlib  # noqa: E402  (after the pin, like every stage)

import torch  # noqa: E402

from mygo.training import TrainParams, train_step  # noqa: E402
from helpers import tiny_model  # noqa: E402


def main() -> None:
    N = 300
    model = tiny_model(num_entities=N, dim=64, emb_dropout=0.2, hidden_dropout=0.3).train()
    config = TrainParams(device="cpu", batch_size=128, lr=0.001, mu=0.1, contrastive_size=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        batch = (torch.randint(0, N, (128,), generator=g), torch.randint(0, 3, (128,), generator=g),
                 torch.rand(128, generator=g) < 0.5, torch.randint(0, N, (128,), generator=g))
        train_step(model, optimizer, config, batch, g, torch.device("cpu"))
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())
    branch = (reproducible.mkl_branch() or "none").replace(" ", "_")
    print(digest.hexdigest(), torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), branch)


if __name__ == "__main__":
    main()
