"""One training step of a tiny model; run alone or under torchrun. Writes loss and parameters."""
import sys

import torch

from mygo import distributed
from mygo.training import TrainParams, train_step
from helpers import tiny_model


def main(out: str) -> None:
    distributed.init_from_env("cpu")
    model = tiny_model(num_entities=11, emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0,
                       input_dropout=0.0, core_dropout=0.0, hidden_dropout=0.0,
                       distributed_step=distributed.active())
    model.train()
    config = TrainParams(device="cpu", batch_size=8, lr=0.01, mu=0.1, contrastive_size=6)
    g = torch.Generator().manual_seed(5)
    batch = (torch.randint(0, 11, (8,), generator=g), torch.randint(0, 3, (8,), generator=g),
             torch.rand(8, generator=g) < 0.5, torch.randint(0, 11, (8,), generator=g))
    # SGD: Adam's first step is lr * sign(grad), which turns the ~1e-9 noise of gradients that
    # are exactly zero in theory (attention key biases) into +-lr and hides real differences.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = train_step(model, optimizer, config, batch, torch.Generator().manual_seed(9), torch.device("cpu"))["loss"]
    if distributed.rank() == 0:
        torch.save({"loss": loss, "state": model.state_dict()}, out)
    if distributed.active():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
