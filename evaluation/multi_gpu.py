"""Encoding on every GPU of a worker. Pure: no Django; torch is imported inside.

sentence-transformers encodes across devices with a pool of processes: the calling process
puts chunks of texts on an input queue and reads vectors back (``encode(..., pool=pool)``,
which mteb's wrapper forwards). Its own pool runs each chunk in fp32; this one speaks the
same protocol and runs the chunk under the run's precision (bf16 autocast on GPUs that have
it), so vectors on N GPUs are those of one GPU up to how texts are grouped into batches
(~1e-7, the same as another batch size: ``evaluation.md``, "The corpus cache").

    pool = encode_pool_start(model, ["cuda:0", "cuda:1"], precision="bf16")
    EvalEncoder(loaded, settings=…, pool=pool)   ─►  model.encode(texts, pool=pool)
    encode_pool_stop(pool)
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def encode_devices(device: str) -> list[str]:
    """``cuda:0`` … ``cuda:N-1`` when ``device`` is "cuda" and the process sees N > 1 GPUs;
    else [] (one device: no pool)."""
    if device != "cuda":
        return []
    import torch

    count = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(count)] if count > 1 else []


def _worker(target_device: str, model, precision: str, input_queue, results_queue) -> None:
    """One pool process: chunks in, vectors (on the CPU) out, until terminated."""
    import contextlib

    import torch

    device_type = "cuda" if target_device.startswith("cuda") else "cpu"
    while True:
        chunk_id, inputs, kwargs = input_queue.get()
        try:
            autocast = (
                torch.autocast(device_type, dtype=torch.bfloat16)
                if precision == "bf16"
                else contextlib.nullcontext()
            )
            with torch.inference_mode(), autocast:
                outputs = model._inference(inputs, device=target_device, **kwargs)
            if isinstance(outputs, torch.Tensor):
                outputs = outputs.float().cpu()
            elif isinstance(outputs, list):
                outputs = [o.cpu() if isinstance(o, torch.Tensor) else o for o in outputs]
        except Exception as error:
            results_queue.put(type(model)._report_worker_failure(chunk_id, error, target_device))
        else:
            results_queue.put([chunk_id, outputs])


def encode_pool_start(model, devices: list[str], *, precision: str) -> dict:
    """A pool of one process per device (sentence-transformers' pool layout). The model is
    moved to the CPU and shared with the processes, as sentence-transformers' own pool does."""
    import torch.multiprocessing as mp

    logger.info("encoding on %s (%s)", ", ".join(devices), precision)
    model.to("cpu")
    model.share_memory()
    context = mp.get_context("spawn")
    inputs, outputs = context.Queue(), context.Queue()
    processes = []
    for device in devices:
        process = context.Process(
            target=_worker, args=(device, model, precision, inputs, outputs), daemon=True
        )
        process.start()
        processes.append(process)
    return {"input": inputs, "output": outputs, "processes": processes}


def encode_pool_stop(pool: dict) -> None:
    from sentence_transformers import SentenceTransformer

    SentenceTransformer.stop_multi_process_pool(pool)
