"""TLS credentials for the gRPC server and the client, from PEM files.

Server: ``server.tls.cert_file`` / ``key_file``; with ``client_ca_file`` every client must present
a certificate signed by that CA (mutual TLS, ``require_client_auth``). Client: the CA that signed
the server's certificate, and optionally its own certificate and key for mTLS.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from recserver.security import TlsConfig


def _read(field: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{field} {path!r}: cannot read it ({exc.strerror})") from None


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials | None:
    """The port's credentials; ``None`` when TLS is off (plaintext)."""
    if tls.cert_file is None or tls.key_file is None:
        return None
    key = _read("server.tls.key_file", tls.key_file)
    cert = _read("server.tls.cert_file", tls.cert_file)
    ca = None if tls.client_ca_file is None else _read("server.tls.client_ca_file",
                                                       tls.client_ca_file)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def channel_credentials(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """Client credentials: trust ``ca_file`` (else the system roots); present a cert for mTLS."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("give both a client certificate and its key (or neither)")
    return grpc.ssl_channel_credentials(
        root_certificates=None if ca_file is None else _read("--ca", str(ca_file)),
        private_key=None if key_file is None else _read("--key", str(key_file)),
        certificate_chain=None if cert_file is None else _read("--cert", str(cert_file)),
    )
