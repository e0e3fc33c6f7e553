"""Triton adapter for the content encoder (torch module in serving/models/content_encoder.py).

The folder comes from the rendered config's parameters (`recsys prepare-models`); a folder
changed since the config was rendered is refused, so the fingerprint the orchestrator
reads from the config is always that of the weights answering.
"""

import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from serving.models.content_encoder import ContentEncoder


class TritonPythonModel:
    def initialize(self, args):
        gpu = args["model_instance_kind"] == "GPU"
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
        parameters = json.loads(args["model_config"]).get("parameters", {})
        folder = parameters.get("model_dir", {}).get("string_value") or None
        self.encoder = ContentEncoder(Path(folder) if folder else None).to(self.device).eval()
        rendered = parameters.get("fingerprint", {}).get("string_value")
        if rendered and rendered != self.encoder.spec.fingerprint:
            raise pb_utils.TritonModelException(
                f"{folder} changed since config.pbtxt was rendered (fingerprint"
                f" {self.encoder.spec.fingerprint}, config says {rendered}):"
                " run `recsys prepare-models` again"
            )

    def execute(self, requests):
        # One forward pass for every request the dynamic batcher handed us.
        texts, sizes = [], []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            decoded = [
                t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in raw
            ]
            texts.extend(decoded)
            sizes.append(len(decoded))
        embeddings = self.encoder.encode(texts)
        responses, start = [], 0
        for size in sizes:
            out = pb_utils.Tensor(
                "EMBEDDING", np.ascontiguousarray(embeddings[start : start + size])
            )
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            start += size
        return responses
