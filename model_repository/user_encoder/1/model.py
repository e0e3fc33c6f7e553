"""Triton adapter for the user encoder (torch module in serving/models/user_encoder.py).

A version exported with its items' vectors (``known_items.npy``: learned embedding +
projected content of every vocabulary item, as trained) takes CONTENT rows only for the
positions whose item it does not know (ITEM_IDS 0, EVENT_TYPES > 0), in order: a history
of known items sends tokens alone. In a batch of histories, CONTENT has as many rows as
the history with the most unknown items (fewer than positions); the others' rows after
their own are ignored. CONTENT with a row for every position (the only form
versions without that file take) places every item by its learned embedding + that row.
"""

import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from serving.models.user_encoder import UserEncoder, UserEncoderConfig

KNOWN_ITEMS = "known_items.npy"  # serving/adapters/triton/repository.py writes it


class TritonPythonModel:
    def initialize(self, args):
        gpu = args["model_instance_kind"] == "GPU"
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
        if not gpu:
            torch.set_num_threads(1)
        folder = Path(args["model_repository"]) / args["model_version"]
        config = UserEncoderConfig(**json.loads((folder / "config.json").read_text()))
        self.model = UserEncoder(config)
        self.model.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu"))
        self.model.to(self.device).eval()
        known = folder / KNOWN_ITEMS
        self.known = torch.from_numpy(np.load(known)).to(self.device) if known.is_file() else None

    @staticmethod
    def unknown(ids, types):
        """Positions holding an item the version has no token for."""
        return (ids == 0) & (types > 0)

    def rows_of_unknown(self, ids, types, content):
        """Whether CONTENT holds, for each history of the batch, a row for each of its
        unknown items (a batch's histories with fewer have zero rows after theirs)."""
        counts = self.unknown(ids, types).sum(axis=1)
        return self.known is not None and content.shape[1] >= counts.max(initial=0)

    def item_vectors(self, ids, types, content):
        """(batch, L, dim) the positions' item vectors (see the module docstring)."""
        tokens = torch.from_numpy(ids).to(self.device)
        rows = torch.from_numpy(content).to(self.device)
        if content.shape[1] == ids.shape[1]:
            return self.model.item_vectors(tokens, rows)
        items = self.known[tokens]
        unknown = torch.from_numpy(self.unknown(ids, types)).to(self.device)
        if bool(unknown.any()):
            # The k-th unknown position of history b takes row k of CONTENT[b].
            history = torch.arange(ids.shape[0], device=self.device)[:, None].expand_as(unknown)
            nth = unknown.long().cumsum(dim=1) - 1
            projected = self.model.content_projection(rows)
            items[unknown] = projected[history[unknown], nth[unknown]]
        return items

    def execute(self, requests):
        inputs, errors = [], {}
        for index, request in enumerate(requests):
            ids = pb_utils.get_input_tensor_by_name(request, "ITEM_IDS").as_numpy()
            types = pb_utils.get_input_tensor_by_name(request, "EVENT_TYPES").as_numpy()
            content = pb_utils.get_input_tensor_by_name(request, "CONTENT").as_numpy()
            if ids.shape != types.shape or content.shape[0] != ids.shape[0]:
                errors[index] = "ITEM_IDS, EVENT_TYPES and CONTENT must share the batch size"
            elif content.shape[2] != self.model.config.content_dim:
                errors[index] = (
                    f"CONTENT is {content.shape[2]}-d; this version was trained with"
                    f" {self.model.config.content_dim}-d content vectors"
                )
            elif ids.max(initial=0) > self.model.config.num_items or ids.min(initial=0) < 0:
                errors[index] = "ITEM_IDS out of the model's vocabulary"
            elif content.shape[1] != ids.shape[1] and not self.rows_of_unknown(ids, types, content):
                errors[index] = (
                    "CONTENT needs a row for every position, or (a version with its items'"
                    " vectors) one for each position of an unknown item"
                )
            else:
                inputs.append((index, ids, types, content))
        results = {}
        if inputs:
            # Requests of one length run as one batch (the orchestrator pads to max_len).
            by_length = {}
            for entry in inputs:
                by_length.setdefault(entry[1].shape[1], []).append(entry)
            with torch.inference_mode():
                for group in by_length.values():
                    items = torch.cat([self.item_vectors(*entry[1:]) for entry in group])
                    types = torch.from_numpy(np.concatenate([g[2] for g in group]))
                    hidden, attention = self.model.encode(items, types.to(self.device))
                    user = hidden[:, -1].float().cpu().numpy()
                    attention = attention.float().cpu().numpy()
                    start = 0
                    for index, ids, _, _ in group:
                        end = start + ids.shape[0]
                        results[index] = (user[start:end], attention[start:end])
                        start = end
        responses = []
        for index in range(len(requests)):
            if index in errors:
                error = pb_utils.TritonError(errors[index])
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            user, attention = results[index]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("USER_VECTOR", np.ascontiguousarray(user)),
                        pb_utils.Tensor("ATTENTION", np.ascontiguousarray(attention)),
                    ]
                )
            )
        return responses
