import logging

import numpy as np
import pytest
import torch

from mygo.memory import ACTIVATION_FACTOR, GIB, choose_encoder_chunk, reuse_memory_if, saved_bytes_per_entity, step_bytes
from mygo.training import TrainParams, train
from helpers import TRAIN, tiny_model
from helpers import VALID as TINY_VALID

VALID = np.array([[0, 0, 5], [1, 1, 9]])


def test_saved_bytes_per_entity_grows_with_width_and_extrapolates():
    small, wide = tiny_model(num_entities=300, dim=8), tiny_model(num_entities=300, dim=32)
    per_small, per_wide = saved_bytes_per_entity(small), saved_bytes_per_entity(wide)
    assert 0 < per_small < per_wide
    # measured on 64 entities, it predicts a whole 300-entity pass within 15%
    whole = saved_bytes_per_entity(wide, sample=300) * 300
    assert abs(per_wide * 300 - whole) / whole < 0.15


def test_parameters_and_tables_are_not_activations():
    from mygo.model import project_tokens
    model = tiny_model(num_entities=100, dim=8)
    # tokens gathered before projecting, whatever the table's size (projecting a table no larger
    # than the tokens first saves activations of its rows, not of the entities: not this test's point)
    model.entity_encoder.tokens = project_tokens
    before = saved_bytes_per_entity(model)
    big = model.entity_encoder.text_table
    model.entity_encoder.text_table = torch.cat([big, torch.zeros(100_000, big.shape[1])])   # 2 MB more table
    assert saved_bytes_per_entity(model) == pytest.approx(before)


def test_chunk_follows_the_budget():
    model = tiny_model(num_entities=2000, dim=32)
    parts = step_bytes(model, 64, 16, 0.01, chunk=0)
    one_pass = sum(parts.values()) / GIB
    assert choose_encoder_chunk(model, one_pass * 1.01, 64, 16, 0.01) == 0        # it all fits: one pass
    fixed = one_pass - parts["entity encoder"] / GIB
    chunks = [choose_encoder_chunk(model, fixed + (one_pass - fixed) * share, 64, 16, 0.01)
              for share in (0.8, 0.5, 0.1)]
    assert 2000 > chunks[0] > chunks[1] > chunks[2] > 0
    for share, chunk in zip((0.8, 0.5, 0.1), chunks):
        budget = (fixed + (one_pass - fixed) * share) * GIB
        assert sum(step_bytes(model, 64, 16, 0.01, chunk).values()) <= budget
        assert chunk == pytest.approx(2000 * share, rel=0.02)


def test_a_budget_below_the_fixed_part_names_the_param():
    model = tiny_model(num_entities=50, dim=16)
    with pytest.raises(ValueError, match=r"train.memory_budget_gb = 0.01: a step needs about .* GiB before"):
        choose_encoder_chunk(model, 0.01, 64, 16, 0.01)


def test_train_chooses_the_chunk_and_keeps_it_in_the_config(caplog):
    triples = np.array([[i % 40, i % 3, (i * 7 + 1) % 40] for i in range(60)])
    model = tiny_model(num_entities=40, dim=16)
    per_entity = saved_bytes_per_entity(model)
    fixed = sum(v for k, v in step_bytes(model, 16, 4, 0.01, chunk=0, per_entity=per_entity).items()
                if k != "entity encoder")
    budget = (fixed + ACTIVATION_FACTOR * per_entity * 10.5) / GIB    # room for 10 entities at a time
    config = TrainParams(device="cpu", seed=1, epochs=1, batch_size=16, mu=0.01, contrastive_size=4,
                         eval_every=1, memory_budget_gb=budget, checkpoint_minutes=0)
    with caplog.at_level(logging.INFO, logger="mygo.training"):
        train(model, config, triples, VALID, progress=False)
    assert model.config.encoder_chunk == 10 and model.entity_encoder.config.encoder_chunk == 10
    assert "entities encoded 10 at a time" in caplog.text
    explicit = tiny_model(num_entities=40, dim=16, encoder_chunk=7)
    train(explicit, config, triples, VALID, progress=False)
    assert explicit.config.encoder_chunk == 7                     # an explicit chunk is used as given


def test_chunked_cpu_encoding_trims_the_heap_before_each_chunk(monkeypatch):
    """Forward and the recomputation in backward each call ops.before_chunk once per chunk (7
    entities in chunks of 3: 3 chunks); the fast ops' hook trims the C heap on CPU."""
    import mygo.fast as fast_module
    calls = []
    monkeypatch.setattr(fast_module, "release_free_memory", lambda: calls.append(1))
    model = tiny_model(encoder_chunk=3)
    model.entity_embeddings().sum().backward()
    assert len(calls) == 6
    from mygo.memory import release_free_memory
    release_free_memory()                     # the real call runs (glibc) or does nothing


REUSE_PROBE = """
import resource, sys
import torch
from mygo.memory import reuse_freed_memory
if sys.argv[1] == "1":
    assert reuse_freed_memory()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds = []
for _ in range(12):                   # a step's pattern: large tensors made and freed, again and again
    before = faults()
    x, y = torch.ones(50_000_000), torch.ones(10_000_000)     # 200 MB and 40 MB, over mmap's threshold
    del x, y
    rounds.append(faults() - before)
print(min(rounds[6:]))                # the fewest of the later rounds, once the heap has grown
"""


def test_reused_memory_is_not_faulted_in_again():
    """With reuse_freed_memory, once the heap has grown to the pattern's size, large tensors freed and
    made again land on pages the process already has; without it every round's are fresh pages the
    kernel must fault in."""
    import subprocess
    import sys
    from conftest import ROOT
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}
    counts = {flag: int(subprocess.run([sys.executable, "-c", REUSE_PROBE, flag], capture_output=True, text=True,
                                       env=env, check=True).stdout.split()[-1]) for flag in ("0", "1")}
    assert counts["0"] > 20_000                      # 200 MB of 4 KiB pages, faulted in afresh
    assert counts["1"] < counts["0"] / 10


@pytest.mark.parametrize("reuse, chunk, expected", [(True, 0, True), (False, 0, False), (True, 3, False)])
def test_training_reuses_freed_memory_only_without_an_encoder_chunk(monkeypatch, reuse, chunk, expected):
    calls = []
    monkeypatch.setattr("mygo.memory.reuse_freed_memory", lambda: calls.append(1) or True)
    config = TrainParams(device="cpu", epochs=1, batch_size=3, eval_every=1, reuse_memory=reuse)
    train(tiny_model(encoder_chunk=chunk), config, TRAIN, TINY_VALID, progress=False)
    assert bool(calls) is expected


@pytest.mark.parametrize("wanted, device, chunk, glibc, expected", [
    (True, "cpu", 0, True, True), (False, "cpu", 0, True, False), (True, "cuda", 0, True, False),
    (True, "cpu", 4096, True, False), (True, "cpu", 0, False, False)])
def test_memory_is_reused_only_when_asked_on_cpu_with_one_encoder_pass(monkeypatch, wanted, device, chunk, glibc,
                                                                       expected):
    calls = []
    monkeypatch.setattr("mygo.memory.reuse_freed_memory", lambda: calls.append(1) or glibc)
    assert reuse_memory_if(wanted, torch.device(device), chunk) is expected
    assert bool(calls) is (wanted and device == "cpu" and not chunk)       # the allocator is touched only then
