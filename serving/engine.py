"""Tokenization and the forward pass of one padded batch.

Texts are tokenized once, when the request arrives (so length limits answer at
once, before queueing), and the batcher later pads a batch of token-id lists to
its longest member: the padding cost is paid per batch, not per max length.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from modeldr.serving.errors import InputTooLarge, limit_hint
from modeldr.serving.loader import LoadedModel

FloatArray = npt.NDArray[np.float32]


class InferenceEngine:
    """Stateless apart from the model: safe to call run() from one worker thread."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        truncate: bool,
        pooling: str = "mean",
        normalize: bool = False,
    ) -> None:
        self.loaded = loaded
        self.truncate = truncate
        self.pooling = pooling
        self.normalize = normalize

    @property
    def output_width(self) -> int:
        if self.loaded.task == "sequence-classification":
            return len(self.loaded.labels)
        return self.loaded.hidden_size

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, with [CLS]/[SEP]; InputTooLarge naming the limit if one is long."""
        limit = self.loaded.max_seq_length
        encoded = self.loaded.tokenizer(
            texts,
            add_special_tokens=True,
            truncation=self.truncate,
            max_length=limit if self.truncate else None,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        ids: list[list[int]] = encoded["input_ids"]
        if not self.truncate:
            for index, row in enumerate(ids):
                if len(row) > limit:
                    raise InputTooLarge(
                        f"text {index} is {len(row)} tokens long; the limit is {limit} tokens "
                        f"({limit_hint('max_seq_length')}, capped by the model's "
                        "max_position_embeddings); or enable --truncate",
                    )
        return ids

    def run(self, batch: list[list[int]]) -> FloatArray:
        """Forward one batch; rows are probabilities (classification) or embeddings."""
        length = max(len(row) for row in batch)
        ids = np.full((len(batch), length), self.loaded.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.int64)
        for index, row in enumerate(batch):
            ids[index, : len(row)] = row
            mask[index, : len(row)] = 1
        if self.loaded.backend == "numpy":
            return self._run_numpy(ids, mask)
        return self._run_torch(ids, mask)

    def _run_numpy(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> FloatArray:
        """The same outputs as _run_torch / _postprocess, computed by numpy_bert."""
        from modeldr.serving.numpy_bert import softmax

        model = self.loaded.model
        if self.loaded.task == "sequence-classification":
            return softmax(model.logits(ids, mask))
        hidden: FloatArray = model.hidden_states(ids, mask)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        if self.normalize:
            # torch.nn.functional.normalize: x / max(||x||, 1e-12)
            norms = np.linalg.norm(pooled, axis=-1, keepdims=True)
            pooled = pooled / np.maximum(norms, np.float32(1e-12))
        result: FloatArray = np.ascontiguousarray(pooled, dtype=np.float32)
        return result

    def _run_torch(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> FloatArray:
        import torch

        device = self.loaded.device
        input_ids = torch.from_numpy(ids).to(device, non_blocking=True)
        attention_mask = torch.from_numpy(mask).to(device, non_blocking=True)
        with torch.inference_mode():
            output = self.loaded.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            )
            result = self._postprocess(output, attention_mask)
        array: FloatArray = result.to("cpu", torch.float32).numpy()
        return array

    def _postprocess(self, output: Any, attention_mask: Any) -> Any:
        import torch

        if self.loaded.task == "sequence-classification":
            return torch.softmax(output.logits.float(), dim=-1)
        hidden = output.last_hidden_state.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    def warmup(self, batch_size: int) -> None:
        """Run a batch of mixed lengths so kernels, allocator and caches are primed."""
        limit = self.loaded.max_seq_length
        texts = ["warm up the model server"] * max(0, batch_size - 1)
        texts.append(" ".join(["model"] * limit))  # truncated to exactly the limit below
        encoded = self.loaded.tokenizer(
            texts, truncation=True, max_length=limit, return_attention_mask=False, verbose=False
        )
        self.run(encoded["input_ids"])
