"""The Triton client adapter (tritonclient.grpc.aio) for both encoders."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tritonclient.grpc.aio as triton
from prometheus_client import Histogram
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE
from tritonclient.utils import InferenceServerException

from serving.adapters.triton.coalescing import CallCoalescer
from serving.core.domain import CONTENT_ENCODER, USER_ENCODER
from serving.core.encoders import ContentEncoderId
from serving.core.errors import Unavailable
from serving.core.itemspace import UserEncoding

TRITON_LATENCY = Histogram(
    "recsys_triton_call_seconds",
    "Latency of calls to Triton, by model.",
    ["model"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
TEXT_BATCH = 64
USERS_PER_CALL = 64
"""The most user histories in one coalesced call (the model's max_batch_size is 128)."""

UserCallKey = tuple[str, int, bool, int]
"""Version ("" the newest), history length, a content row per position, content width."""


class UserInputs(NamedTuple):
    """One user's inputs to the user encoder (see ``TritonEncoders.encode_user``)."""

    item_ids: np.ndarray
    event_types: np.ndarray
    content: np.ndarray


CHANNEL_ARGS = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
    # After Triton restarts, gRPC's reconnect backoff (growing 1.6x per failure, up to
    # minutes) would keep the channel failing fast long after Triton is back: try again at
    # least every second, so full answers return within about a second of Triton.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
"""tritonclient's defaults for message sizes, plus a short reconnect backoff."""


class TritonEncoders:
    """The Encoders and ServedModels ports on Triton: calls the ``user_encoder`` and
    ``content_encoder`` models; errors become Unavailable."""

    def __init__(self, url: str, timeout_ms: int, coalesce_users: bool = False) -> None:
        """``coalesce_users``: user encodings asked for while one call is in flight go out
        together in the next call (serving.adapters.triton.coalescing), as the serving
        path wants; off, every ``encode_user`` is a call of its own."""
        self._client = triton.InferenceServerClient(url, channel_args=CHANNEL_ARGS)
        self._timeout_s = timeout_ms / 1000
        self._content: ContentEncoderId | None = None
        self._users: CallCoalescer[UserCallKey, UserInputs, UserEncoding] | None = (
            CallCoalescer(self._encode_users, USERS_PER_CALL) if coalesce_users else None
        )

    @property
    def content_fingerprint(self) -> str:
        """The fingerprint of the content encoder Triton last said it serves ("" before
        ``content_encoder`` has answered once): what the vectors of ``encode_texts`` are
        recorded with."""
        return self._content.fingerprint if self._content is not None else ""

    async def content_encoder(self) -> ContentEncoderId | None:
        """The content encoder Triton serves, from its rendered config's parameters (None
        while Triton is unreachable or the config records no identity)."""
        try:
            answer = await self._client.get_model_config(
                CONTENT_ENCODER, as_json=True, client_timeout=2
            )
        except InferenceServerException:
            return self._content
        parameters = answer.get("config", {}).get("parameters", {})
        values = {key: entry.get("string_value", "") for key, entry in parameters.items()}
        if values.get("fingerprint"):
            self._content = ContentEncoderId(
                values.get("encoder_name", ""), int(values.get("dim", 0)), values["fingerprint"]
            )
        return self._content

    async def encode_user(
        self,
        item_ids: np.ndarray,
        event_types: np.ndarray,
        content: np.ndarray,
        version: int | None = None,
    ) -> UserEncoding:
        """One user: ``item_ids``/``event_types`` (L,) int64, ``content`` (L, dim) float32
        or, for a version with its items' vectors, a row per unknown position; from
        ``version`` of the model (None: the one Triton picks, its newest)."""
        # Histories batch with those of the same version, length, width and form (a row
        # per position, or rows of the unknown positions: padded to the most in the call).
        length, rows = len(item_ids), content.shape[0]
        key = ("" if version is None else str(version), length, rows == length, content.shape[1])
        user = UserInputs(item_ids, event_types, content)
        if self._users is None:
            return (await self._encode_users(key, [user]))[0]
        return await self._users.submit(key, user)

    async def _encode_users(
        self, key: UserCallKey, users: Sequence[UserInputs]
    ) -> list[UserEncoding]:
        """One call for ``users`` (all of ``key``): CONTENT (n, R, dim), each user's rows
        first and zeros after, R the most rows of any of them (the model reads a user's
        rows up to its own count of unknown positions)."""
        version, length, _, width = key
        rows = max(user.content.shape[0] for user in users)
        tokens = np.empty((len(users), length), np.int64)
        types = np.empty((len(users), length), np.int64)
        content = np.zeros((len(users), rows, width), np.float32)
        for row, user in enumerate(users):
            tokens[row], types[row] = user.item_ids, user.event_types
            content[row, : user.content.shape[0]] = user.content
        inputs = [
            triton.InferInput("ITEM_IDS", list(tokens.shape), "INT64"),
            triton.InferInput("EVENT_TYPES", list(types.shape), "INT64"),
            triton.InferInput("CONTENT", list(content.shape), "FP32"),
        ]
        inputs[0].set_data_from_numpy(tokens)
        inputs[1].set_data_from_numpy(types)
        inputs[2].set_data_from_numpy(content)
        result = await self._infer(USER_ENCODER, inputs, self._timeout_s, version)
        vectors, attention = result.as_numpy("USER_VECTOR"), result.as_numpy("ATTENTION")
        model_version = result.get_response().model_version
        return [
            UserEncoding(vector=vectors[row], attention=attention[row], model_version=model_version)
            for row in range(len(users))
        ]

    async def encode_texts(self, texts: Sequence[str], timeout_s: float = 60) -> np.ndarray:
        """(len(texts), dim) content embeddings of the encoder Triton serves."""
        if self._content is None:
            await self.content_encoder()  # label the vectors from the first call on
        chunks = []
        for start in range(0, len(texts), TEXT_BATCH):
            batch = np.array([[t.encode("utf-8")] for t in texts[start : start + TEXT_BATCH]])
            text = triton.InferInput("TEXT", list(batch.shape), "BYTES")
            text.set_data_from_numpy(batch.astype(np.object_))
            result = await self._infer(CONTENT_ENCODER, [text], timeout_s)
            chunks.append(result.as_numpy("EMBEDDING"))
        width = self._content.dim if self._content is not None else 0
        return np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32)

    async def encode_query(self, text: str) -> np.ndarray:
        """(384,) normalised content embedding of one query, under the request deadline
        (``timeout_ms``) rather than the catalogue's generous one: the same model and
        inputs as the items' texts, so the query lands in the items' content space."""
        embedding: np.ndarray = (await self.encode_texts([text], timeout_s=self._timeout_s))[0]
        return embedding

    async def ready_version(self, model: str = USER_ENCODER) -> int | None:
        """The highest version of ``model`` Triton reports READY, or None."""
        try:
            index = await self._client.get_model_repository_index(client_timeout=2)
        except InferenceServerException:
            return None
        ready = [
            int(entry.version)
            for entry in index.models
            if entry.name == model and entry.state == "READY" and entry.version
        ]
        return max(ready, default=None)

    async def load(self, model: str) -> None:
        """Ask Triton (explicit model control) to (re)load ``model``'s newest version."""
        try:
            await self._client.load_model(model, client_timeout=120)
        except InferenceServerException as error:
            raise Unavailable(f"Triton could not load {model}: {error.message()}") from error

    async def _infer(
        self, model: str, inputs: list[triton.InferInput], timeout_s: float, version: str = ""
    ) -> triton.InferResult:
        started = time.perf_counter()
        try:
            return await self._client.infer(
                model, inputs, model_version=version, client_timeout=timeout_s
            )
        except InferenceServerException as error:
            raise Unavailable(f"Triton {model} call failed: {error.message()}") from error
        finally:
            TRITON_LATENCY.labels(model).observe(time.perf_counter() - started)

    async def close(self) -> None:
        if self._users is not None:
            await self._users.close()
        await self._client.close()
