"""Nobody let in, nothing leaked: every Admin RPC needs the token, TLS with a certificate
made here, SQL injection and hostile Unicode in every string field of every RPC,
ForgetUser checked table by table, no user ids in the server's INFO log."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from google.protobuf.message import Message
from psycopg import sql
from recsys.v1 import recsys_pb2 as pb

from serving.client import Event, RecsysClient
from serving.stack import free_port, wait_until
from tests.integration import hostile
from tests.integration.platform import ADMIN_TOKEN, Running, grpc_server

pytestmark = pytest.mark.integration

AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
PAYLOADS = (
    hostile.NASTY_STRINGS[0],  # '; DROP TABLE items; --
    hostile.NASTY_STRINGS[1],  # x' OR '1'='1
    hostile.NASTY_STRINGS[7],  # mixed scripts and emoji
    hostile.NASTY_STRINGS[9],  # over 256 characters of 4-byte UTF-8
    "ß" * 25_000,  # over every text limit
)


def some_items(platform: Running, n: int = 3) -> list[str]:
    with psycopg.connect(platform.url) as conn:
        rows = conn.execute(
            "SELECT item_id FROM items WHERE deleted_at IS NULL ORDER BY item_id LIMIT %s", (n,)
        )
        return [r[0] for r in rows]


# -- authentication -------------------------------------------------------------------
@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong"),),
        (("authorization", ADMIN_TOKEN),),  # no scheme
        (("authorization", f"bearer {ADMIN_TOKEN} "),),
        (("x-admin-token", ADMIN_TOKEN),),
    ],
    ids=["none", "wrong", "no-scheme", "mangled", "other-header"],
)
def test_every_admin_rpc_refuses_a_missing_or_wrong_token(platform: Running, metadata) -> None:
    before = hostile.counts(platform.url)
    with grpc.insecure_channel(platform.target) as channel:
        for rpc in (r for r in hostile.rpcs() if r.admin):
            assert hostile.call(channel, rpc, b"", metadata) == grpc.StatusCode.UNAUTHENTICATED
    assert hostile.counts(platform.url) == before


# What each admin RPC answers an empty request once the token is right: the reads
# succeed, every change is refused for its missing author (nothing is written).
EMPTY_REQUEST_ANSWERS = {
    "GetParameters": grpc.StatusCode.OK,
    "ListParameterHistory": grpc.StatusCode.OK,
    "ListExperiments": grpc.StatusCode.OK,
    "PreviewParameters": grpc.StatusCode.OK,
    "UpdateParameters": grpc.StatusCode.INVALID_ARGUMENT,
    "RollbackParameters": grpc.StatusCode.INVALID_ARGUMENT,
    "CreateExperiment": grpc.StatusCode.INVALID_ARGUMENT,
    "AllocateExperiment": grpc.StatusCode.INVALID_ARGUMENT,
    "StopExperiment": grpc.StatusCode.INVALID_ARGUMENT,
}


def test_every_admin_rpc_lets_the_token_in(platform: Running) -> None:
    admin = [r for r in hostile.rpcs() if r.admin]
    assert {r.path.rsplit("/", 1)[-1] for r in admin} == set(EMPTY_REQUEST_ANSWERS)
    before = hostile.counts(platform.url)
    with grpc.insecure_channel(platform.target) as channel:
        for rpc in admin:
            name = rpc.path.rsplit("/", 1)[-1]
            try:
                channel.unary_unary(rpc.path)(b"", timeout=30, metadata=AUTH)
            except grpc.RpcError as error:
                assert (error.code(), name) == (EMPTY_REQUEST_ANSWERS[name], name)
                assert error.details() == "changed_by: must not be empty", name
            else:
                assert EMPTY_REQUEST_ANSWERS[name] == grpc.StatusCode.OK, name
    assert hostile.counts(platform.url) == before


# -- TLS ------------------------------------------------------------------------------
def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, made here (no CA involved)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.crt", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextlib.contextmanager
def tls_server(platform: Running, folder: Path) -> Iterator[tuple[str, bytes]]:
    """Another `recsys serve` on the shared database and Triton, speaking TLS only."""
    cert_file, key_file = self_signed(folder)
    settings = platform.settings.model_copy(
        update={
            "grpc_port": free_port(),
            "metrics_port": 0,
            "tls_cert_file": cert_file,
            "tls_key_file": key_file,
        }
    )
    root = cert_file.read_bytes()

    def ready() -> bool:
        with RecsysClient(settings.grpc_target, retries=0, timeout_s=1, tls_root_cert=root) as c:
            try:
                c.recommend("tls-probe", k=1)
            except grpc.RpcError:
                return False
            return True

    with grpc_server(settings, folder / "server.log", ready):
        yield settings.grpc_target, root


def test_grpc_over_tls_with_a_generated_certificate(platform: Running, tmp_path) -> None:
    with tls_server(platform, tmp_path) as (target, root):
        with RecsysClient(target, token=ADMIN_TOKEN, retries=0, tls_root_cert=root) as client:
            assert len(client.recommend("tls-user", k=3).items) == 3
            assert client.get_parameters()["version"] >= 1
        # Plaintext is not spoken on a TLS port, and an unknown certificate is not trusted.
        with RecsysClient(target, retries=0, timeout_s=3) as plain:
            with pytest.raises(grpc.RpcError) as error:
                plain.recommend("tls-user", k=3)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        (tmp_path / "other").mkdir()
        other_root, _ = self_signed(tmp_path / "other")
        with RecsysClient(
            target, retries=0, timeout_s=3, tls_root_cert=other_root.read_bytes()
        ) as untrusting:
            with pytest.raises(grpc.RpcError) as error:
                untrusting.recommend("tls-user", k=3)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE


# -- injection and Unicode in every string field --------------------------------------
def base_requests(platform: Running) -> dict[str, Message]:
    """A plausible request per RPC, whose string fields the test then replaces one by one."""
    items = some_items(platform)
    window = {
        "available_from": {"seconds": 946_684_800},
        "available_until": {"seconds": 946_771_200},
    }
    item = pb.Item(
        item_id=f"sec-{uuid.uuid4()}",
        title="title",
        description="text",
        categories=["c"],
        tags=["t"],
        attributes={"a": "b"},
        **window,  # in the past: never recommended to anyone
    )
    return {
        "Recommend": pb.RecommendRequest(
            user_id="sec-user", k=5, exclude_item_ids=[items[0]], context={"k": "v"}
        ),
        "LogFeedback": pb.LogFeedbackRequest(
            events=[pb.FeedbackEvent(user_id="sec-user", item_id=items[1], type=1)]
        ),
        "UpsertItems": pb.UpsertItemsRequest(items=[item]),
        "ForgetUser": pb.ForgetUserRequest(user_id="sec-nobody"),
        "MergeSession": pb.MergeSessionRequest(session_id="sec-session", user_id="sec-nobody"),
        "UpdateParameters": pb.UpdateParametersRequest(
            update_mask=["exclude_seen"], changed_by="sec", reason="sec"
        ),
    }


OK = grpc.StatusCode.OK


def stored_events(url: str, user_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE user_id = %s", (user_id,))
        return int(row.fetchone()[0])  # type: ignore[index]


def table_names(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}


def test_injection_and_unicode_in_every_string_field(platform: Running) -> None:
    bases = base_requests(platform)
    started = hostile.now()
    tables = table_names(platform.url)
    items_before = hostile.counts(platform.url)["items"]
    tried = 0
    stored_as_sent: list[int] = []
    with (
        grpc.insecure_channel(platform.target) as channel,
        RecsysClient(platform.target, token=ADMIN_TOKEN, retries=0) as client,
    ):
        version = client.get_parameters()["version"]
        try:
            for rpc in hostile.rpcs():
                name = rpc.path.rsplit("/", 1)[-1]
                base = bases.get(name, rpc.request())
                for path in hostile.string_paths(rpc.request.DESCRIPTOR):
                    for payload in PAYLOADS:
                        request = hostile.with_string(base, path, payload)
                        if name == "LogFeedback" and path != "events.event_id":
                            request = hostile.with_string(
                                request, "events.event_id", str(uuid.uuid4())
                            )
                        code = hostile.call(
                            channel, rpc, request.SerializeToString(), AUTH if rpc.admin else ()
                        )
                        assert code not in {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}, (
                            f"{name} {path}={payload[:30]!r}: {code.name}"
                        )
                        tried += 1
                        if (name, path) == ("LogFeedback", "events.user_id") and code == OK:
                            stored_as_sent.append(stored_events(platform.url, payload))
        finally:
            hostile.retire_items_since(platform.url, started)
            if client.get_parameters()["version"] != version:
                client.rollback_parameters(version, changed_by="tests", reason="after injection")
    assert tried > 100
    # Nothing was dropped or emptied, and an accepted payload is stored as it was sent.
    assert table_names(platform.url) == tables
    assert hostile.counts(platform.url)["items"] >= items_before
    # An accepted injection attempt is stored as it was sent (ForgetUser, tried later with
    # the same strings, then deletes it again).
    assert stored_as_sent == [1, 1], "the two injection strings are valid ids"


# -- forgetting -----------------------------------------------------------------------
def rows_about(url: str, user: str, session: str) -> dict[str, int]:
    """Rows that name the user (or their session) in every table of the schema, found by
    column name, plus what hangs off their recommendations and events."""
    counts: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name IN ('user_id', 'subject', 'session_id')"
            " AND table_name NOT LIKE 'events\\_%%'"
        ).fetchall()
        for table, column in columns:
            value = session if column == "session_id" else user
            query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                sql.Identifier(table), sql.Identifier(column)
            )
            counts[f"{table}.{column}"] = conn.execute(query, (value,)).fetchone()[0]  # type: ignore[index]
        counts["impressions"] = conn.execute(
            "SELECT count(*) FROM impressions i JOIN recommendations r USING (recommendation_id)"
            " WHERE r.user_id = %s",
            (user,),
        ).fetchone()[0]  # type: ignore[index]
        counts["event_ids"] = conn.execute(
            "SELECT count(*) FROM event_ids WHERE event_id LIKE %s", (f"{user}-%",)
        ).fetchone()[0]  # type: ignore[index]
        counts["rollup_last_seen"] = conn.execute(
            "SELECT count(*) FROM rollup_last_seen WHERE key IN (md5(%s)::uuid, md5(%s)::uuid)",
            (user, session),
        ).fetchone()[0]  # type: ignore[index]
    return counts


def test_forget_user_removes_every_row_about_the_user(platform: Running) -> None:
    user, session = f"forget-{uuid.uuid4()}", f"forget-session-{uuid.uuid4()}"
    items = some_items(platform)
    with RecsysClient(platform.target, retries=0) as client:
        # As an anonymous visitor, then signed in: events by session and by user.
        client.log_feedback([Event(items[0], "click", session_id=session, event_id=f"{user}-0")])
        client.merge_session(session, user)
        rec = client.recommend(user, k=5)
        client.log_feedback(
            [
                Event(
                    items[1],
                    "click",
                    user_id=user,
                    recommendation_id=rec.recommendation_id,
                    event_id=f"{user}-1",
                ),
                Event(items[2], "dislike", user_id=user, session_id=session, event_id=f"{user}-2"),
            ]
        )
        # Impressions are written in batches: wait until they are there to be forgotten.
        assert wait_until(lambda: rows_about(platform.url, user, session)["impressions"] > 0, 10)
        before = rows_about(platform.url, user, session)
        assert before["users.user_id"] == 1 and before["user_state.subject"] == 1
        assert before["events.user_id"] == 3 and before["event_ids"] == 3
        assert before["recommendations.user_id"] == 1 and before["impressions"] == 5
        assert client.forget_user(user) == 3
    after = rows_about(platform.url, user, session)
    assert {table: n for table, n in after.items() if n} == {}, after


# -- logs -----------------------------------------------------------------------------
def test_user_ids_are_not_written_to_the_log_at_info(platform: Running) -> None:
    user = f"private-{uuid.uuid4()}"
    items = some_items(platform)
    with RecsysClient(platform.target, retries=0) as client:
        client.recommend(user, k=5)
        client.log_feedback([Event(items[0], "click", user_id=user)])
        with pytest.raises(grpc.RpcError):
            client.log_feedback([Event("no-such-item", "click", user_id=user)])
        client.forget_user(user)
    logs = platform.settings.state_dir / "logs"
    server_log = logs / "server.log"
    # The server logs at INFO (its start line is there), so the check below reads a log
    # that would hold the id if anything wrote it.
    text = server_log.read_text(errors="replace")
    assert "INFO serving.server: gRPC on" in text, text[-2000:]
    written = sorted(p.name for p in logs.glob("*.log"))
    assert {"server.log", "tritonserver.log"} <= set(written), written
    for log in logs.glob("*.log"):
        assert user not in log.read_text(errors="replace"), log.name
