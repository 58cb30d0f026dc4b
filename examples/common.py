"""What every example shares: its command-line options and its data."""

from __future__ import annotations

import argparse
from pathlib import Path

import genvae as gv


def options(description: str, name: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default="synthetic-digits", choices=gv.data.DATASETS)
    parser.add_argument("--data-root", default=None, help="folder searched first for the dataset files")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default=f"runs/examples/{name}", help="where figures are written")
    parser.add_argument("--quick", action="store_true", help="a small, fast run (used by the tests)")
    args = parser.parse_args()
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.epochs = 1
    return args


def splits(args: argparse.Namespace) -> tuple[gv.data.ImageDataset, gv.data.ImageDataset]:
    """The training and test splits (small ones with --quick)."""
    sizes = (1000, 200) if args.quick else (None, None)
    train = gv.data.load_dataset(args.dataset, "train", args.data_root, limit=sizes[0])
    test = gv.data.load_dataset(args.dataset, "test", args.data_root, limit=sizes[1])
    return train, test
