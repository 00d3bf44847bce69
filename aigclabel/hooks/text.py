"""The green-list text watermark as a Hugging Face ``transformers`` logits processor.

``transformers`` calls every processor in a ``LogitsProcessorList`` as ``processor(input_ids, scores)`` with a
``(batch, sequence)`` id tensor and ``(batch, vocab)`` scores, and expects scores back. This class does that
for torch tensors (the bias is added on the scores' device, in their dtype) and for numpy arrays, without
importing torch or transformers until it is handed a tensor. Detection needs only the token ids and the key:
:func:`aigclabel.watermark.text.detect_green_list`.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ..watermark.payload import DEMO_KEY
from ..watermark.text import GreenListProcessor, green_mask


class WatermarkLogitsProcessor:
    """Adds ``delta`` to the keyed green list of the next token (Kirchenbauer et al. 2023) at every step.

    ``model.generate(..., logits_processor=LogitsProcessorList([WatermarkLogitsProcessor(key)]))``.
    """

    def __init__(self, key: bytes = DEMO_KEY, gamma: float = 0.25, delta: float = 2.0) -> None:
        self.processor = GreenListProcessor(key=key, gamma=gamma, delta=delta)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """The scores with the green-list bias added (same type, device and dtype as given)."""
        if not hasattr(scores, "detach"):  # numpy or nested lists
            return self.processor(input_ids, scores)
        torch = importlib.import_module("torch")  # only reached with a torch tensor, so torch is there

        vocab = int(scores.shape[-1])
        p = self.processor
        rows = [ids[-1] if len(ids) else None for ids in input_ids.tolist()]
        masks = np.stack(
            [green_mask(int(r), vocab, p.key, p.gamma) if r is not None else np.zeros(vocab, bool) for r in rows]
        )
        bias = torch.from_numpy(masks.astype(np.float32) * np.float32(p.delta)).to(
            device=scores.device, dtype=scores.dtype
        )
        return scores + bias
