"""Write a Sphinx inventory (objects.inv) of the PyTorch names genvae's API refers to, pointing at
their pages on docs.pytorch.org, so intersphinx links work without network access."""

from __future__ import annotations

import zlib
from pathlib import Path

# (name, role, page relative to https://docs.pytorch.org/docs/stable/)
TORCH_OBJECTS = [
    ("torch.Tensor", "py:class", "tensors.html#torch.Tensor"),
    ("torch.Generator", "py:class", "generated/torch.Generator.html"),
    ("torch.device", "py:class", "tensor_attributes.html#torch.device"),
    ("torch.dtype", "py:class", "tensor_attributes.html#torch.dtype"),
    ("torch.nn.Module", "py:class", "generated/torch.nn.Module.html"),
    ("torch.nn.Linear", "py:class", "generated/torch.nn.Linear.html"),
    ("torch.nn.Conv2d", "py:class", "generated/torch.nn.Conv2d.html"),
    ("torch.nn.ConvTranspose2d", "py:class", "generated/torch.nn.ConvTranspose2d.html"),
    ("torch.nn.parallel.DistributedDataParallel", "py:class", "generated/torch.nn.parallel.DistributedDataParallel.html"),
    ("torch.optim.Optimizer", "py:class", "optim.html#torch.optim.Optimizer"),
    ("torch.optim.Adam", "py:class", "generated/torch.optim.Adam.html"),
    ("torch.utils.data.Dataset", "py:class", "data.html#torch.utils.data.Dataset"),
    ("torch.utils.data.DataLoader", "py:class", "data.html#torch.utils.data.DataLoader"),
    ("torch.distributions.Distribution", "py:class", "distributions.html#torch.distributions.distribution.Distribution"),
    ("torch.distributions.kl.kl_divergence", "py:function", "distributions.html#torch.distributions.kl.kl_divergence"),
    ("torch.compile", "py:function", "generated/torch.compile.html"),
]


def write_inventory(path: Path) -> None:
    lines = [f"{name} {role} 1 {uri} -" for name, role, uri in TORCH_OBJECTS]
    header = b"# Sphinx inventory version 2\n# Project: PyTorch\n# Version: stable\n# The remainder of this file is compressed using zlib.\n"
    path.write_bytes(header + zlib.compress(("\n".join(lines) + "\n").encode()))
