"""Images per second of the full-size visual tokenizers (random weights, same cost as trained).

    python bench/image_tokenizers.py [--threads 2] [--images 8] [--out bench/results/image_tokenizers.md]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mygo.vision import BEIT_PRESETS, VQGAN_PRESETS, BEiTv2Tokenizer, VQGANTokenizer  # noqa: E402


def measure(tokenizer, size, images, batch):
    x = torch.rand(batch, 3, size, size)
    tokenizer(x)                                  # warm-up
    started = time.perf_counter()
    done = 0
    while done < images:
        tokenizer(x)
        done += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    vqgan = VQGANTokenizer(*VQGAN_PRESETS["full"]).eval()
    rows.append(("VQGAN f16 (taming ImageNet layout, 1024 codes)", 256,
                 measure(lambda x: vqgan(x * 2 - 1), 256, args.images, args.batch)))
    print(rows[-1], flush=True)
    beit = BEiTv2Tokenizer(**BEIT_PRESETS["full"]).eval()
    rows.append(("BEiT-v2 VQ-KD (ViT-B/16, 8192 x 32 codebook)", 224, measure(beit, 224, args.images, args.batch)))
    print(rows[-1], flush=True)
    text = (f"Command: `python bench/image_tokenizers.py --threads {args.threads} --images {args.images} "
            f"--batch {args.batch}` (torch {torch.__version__}, CPU, {args.threads} threads)\n\n"
            "| tokenizer | input px | images / s |\n|---|---|---|\n"
            + "".join(f"| {name} | {px} | {rate:.2f} |\n" for name, px, rate in rows))
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
