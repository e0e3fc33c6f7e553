"""Triton adapter for the user encoder (torch module in serving/models/user_encoder.py)."""

import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from serving.models.user_encoder import UserEncoder, UserEncoderConfig


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

    def execute(self, requests):
        inputs, errors = [], {}
        for index, request in enumerate(requests):
            ids = pb_utils.get_input_tensor_by_name(request, "ITEM_IDS").as_numpy()
            types = pb_utils.get_input_tensor_by_name(request, "EVENT_TYPES").as_numpy()
            content = pb_utils.get_input_tensor_by_name(request, "CONTENT").as_numpy()
            if ids.shape != types.shape or content.shape[:2] != ids.shape:
                errors[index] = "ITEM_IDS, EVENT_TYPES and CONTENT must share batch and length"
            elif content.shape[2] != self.model.config.content_dim:
                errors[index] = (
                    f"CONTENT is {content.shape[2]}-d; this version was trained with"
                    f" {self.model.config.content_dim}-d content vectors"
                )
            elif ids.max(initial=0) > self.model.config.num_items or ids.min(initial=0) < 0:
                errors[index] = "ITEM_IDS out of the model's vocabulary"
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
                    tensors = [
                        torch.from_numpy(np.concatenate([g[k] for g in group])).to(self.device)
                        for k in (1, 2, 3)
                    ]
                    hidden, attention = self.model(*tensors)
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
