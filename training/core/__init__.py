"""Training without Django: plain data in, dataclasses out (the import-linter contract "Pure
cores" holds for every module here). torch, transformers, sentence-transformers and peft are
imported inside the functions that use them, so a web process can import ``TrainConfig`` for
its form without paying for them.

    config.py       TrainConfig, the one schema of the hyper-parameters (form, CLI, API)
    data.py         snapshot file → examples → training rows
    model.py        device, bf16, the base model + LoRA adapter, collator, loss
    loop.py         train(): the trainer, progress/cancel callback, the loss curve
    throughput.py   batch counts, model FLOPs and MFU
    distributed.py  one run on several GPUs: torch's launcher, DDP, events back to the caller
    checkpoints.py  complete-only checkpoints, rotation, removal
    artifacts.py    the saved adapter / merged / full model, and loading it back

Flow, resume and cancel: ``training/training.md``.
"""

from .loop import train  # noqa: E402  (importing it loads no torch)

__all__ = ["train"]
