"""`recsys call`: the API from the command line, with grpcurl's JSON.

``recsys call recsys.v1.Recommender/Recommend -d '{"user_id": "ana", "k": 5}'`` sends the
JSON as the request message (proto field names or their lowerCamelCase JSON names, as
protobuf's JSON mapping reads them) and prints the response as JSON with proto field
names, as grpcurl does. The methods and messages come from the generated code of
protos/recsys/v1, so nothing but the package is needed: no grpcurl, no server reflection.
``recsys call`` alone lists the methods.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from recsys.v1 import recsys_pb2

SERVICES: tuple[ServiceDescriptor, ...] = tuple(recsys_pb2.DESCRIPTOR.services_by_name.values())


def methods() -> list[str]:
    """Every callable method, as ``package.Service/Method``."""
    return [f"{s.full_name}/{m.name}" for s in SERVICES for m in s.methods]


def find_method(name: str) -> MethodDescriptor:
    """``recsys.v1.Recommender/Recommend`` (or ``.Recommend``, or ``Recommender/Recommend``)."""
    service_name, _, method_name = name.replace("/", ".").rpartition(".")
    for service in SERVICES:
        if service_name in (service.full_name, service.name):
            method = service.methods_by_name.get(method_name)
            if method is not None:
                return method
    raise typer.BadParameter(f"no method {name!r}; one of: {', '.join(methods())}")


def request_message(method: MethodDescriptor, body: str) -> Message:
    """The request built from its JSON (empty: the empty message)."""
    request = message_factory.GetMessageClass(method.input_type)()
    try:
        json_format.Parse(body or "{}", request)
    except json_format.ParseError as error:
        raise typer.BadParameter(f"-d: {error}") from None
    return request


def invoke(
    target: str,
    method: MethodDescriptor,
    request: Message,
    *,
    token: str | None,
    timeout_s: float,
    root_cert: bytes | None = None,
) -> Message:
    """One unary call of ``method`` (the bearer token, when given, goes on every call)."""
    import grpc

    response_class = message_factory.GetMessageClass(method.output_type)
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials(root_cert))
        if root_cert is not None
        else grpc.insecure_channel(target)
    )
    with channel:
        stub = channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        response: Message = stub(request, timeout=timeout_s, metadata=metadata)
        return response


def call(
    method: Annotated[
        str | None, typer.Argument(help="e.g. recsys.v1.Recommender/Recommend; none: list.")
    ] = None,
    data: Annotated[
        str, typer.Option("-d", "--data", help="The request as JSON ('@FILE' or '@-': read).")
    ] = "{}",
    target: Annotated[
        str | None, typer.Option(help="host:port (default: RECSYS_GRPC_HOST:RECSYS_GRPC_PORT).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Admin bearer token (default: RECSYS_ADMIN_TOKEN).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Deadline in seconds.")] = 10.0,
    root_cert: Annotated[
        Path | None, typer.Option(help="Speak TLS, trusting this PEM certificate.")
    ] = None,
) -> None:
    """Call the API with JSON, like grpcurl (`recsys call` alone lists the methods)."""
    import grpc

    from serving.config import load_settings

    if method is None:
        typer.echo("\n".join(methods()))
        return
    descriptor = find_method(method)
    if data.startswith("@"):
        data = sys.stdin.read() if data == "@-" else Path(data[1:]).read_text()
    request = request_message(descriptor, data)
    try:
        settings = load_settings()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    secret = token if token is not None else settings.admin_token.get_secret_value()
    try:
        response = invoke(
            target or settings.grpc_target,
            descriptor,
            request,
            token=secret,
            timeout_s=timeout,
            root_cert=root_cert.read_bytes() if root_cert else None,
        )
    except grpc.RpcError as error:
        # grpcurl's layout: the status name and the server's message, exit status 1.
        typer.echo(f"ERROR:\n  Code: {error.code().name}\n  Message: {error.details()}", err=True)
        raise typer.Exit(1) from None
    # Proto field names, as grpcurl prints them (and as the README's requests spell them).
    typer.echo(json_format.MessageToJson(response, indent=2, preserving_proto_field_name=True))


def register(app: typer.Typer) -> None:
    """Add `recsys call` to the ``recsys`` app."""
    app.command()(call)
