"""Access control settings: TLS for the gRPC port and the bearer token (``server.tls`` /
``server.auth`` in the config file).

Kept apart from the transport (``recserver.server.tls``, ``recserver.server.auth``) so the config
module can use these models without importing grpc. A token is a secret: it is held as a
``SecretStr``, read from the config, a file or an environment variable, and never logged or put
in an error message (messages name where it was looked for, never its value).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from recserver.core.model import StrictModel

#: A shorter token is refused: it could be guessed.
MIN_TOKEN_CHARS = 16


def _must_exist(field: str, value: str | None) -> None:
    if value is not None and not Path(value).is_file():
        raise ValueError(f"{field}: no such file {value!r}; give the path of a readable file")


class TlsConfig(StrictModel):
    """TLS for the gRPC port. Both files set: TLS on; neither: plaintext (loopback only)."""

    cert_file: str | None = Field(default=None, description="PEM server certificate (chain)")
    key_file: str | None = Field(default=None, description="PEM private key of cert_file")
    client_ca_file: str | None = Field(
        default=None, description="PEM CA bundle; set: every client must present a certificate "
        "it signed (mutual TLS)"
    )

    @model_validator(mode="after")
    def _files(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls: set both cert_file and key_file (or neither for plaintext)")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("tls.client_ca_file needs tls.cert_file and tls.key_file: client "
                             "certificates are only checked over TLS")
        _must_exist("tls.cert_file", self.cert_file)
        _must_exist("tls.key_file", self.key_file)
        _must_exist("tls.client_ca_file", self.client_ca_file)
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class AuthConfig(StrictModel):
    """The bearer token for writes and admin RPCs. No source set: no token is required."""

    token: SecretStr | None = Field(
        default=None, description="the token itself (prefer token_file or token_env)"
    )
    token_file: str | None = Field(default=None, description="a file holding the token")
    token_env: str | None = Field(
        default=None, description="the name of an environment variable holding the token"
    )
    require_for_recommend: bool = Field(
        default=False, description="true: Recommend needs the token too (else only "
        "RecordEvents, UpdateItems, DeleteUser, GetIngestStatus, DescribeUser and DescribeItems)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> AuthConfig:
        given = [n for n in ("token", "token_file", "token_env") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"auth: {' and '.join(given)} are both set; give the token one way")
        _must_exist("auth.token_file", self.token_file)
        if self.token is not None and len(self.token.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(f"auth.token: shorter than {MIN_TOKEN_CHARS} characters; use a "
                             "long random token (e.g. `openssl rand -hex 32`)")
        return self

    @property
    def configured(self) -> bool:
        return any(v is not None for v in (self.token, self.token_file, self.token_env))

    def resolve(self) -> str | None:
        """The token (``None``: auth off); ``ValueError`` names the source, never the value."""
        if self.token is not None:
            value = self.token.get_secret_value()
            where = "auth.token"
        elif self.token_file is not None:
            try:
                value = Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise ValueError(f"auth.token_file {self.token_file!r}: cannot read it "
                                 f"({exc.strerror})") from None
            where = f"auth.token_file {self.token_file!r}"
        elif self.token_env is not None:
            value = os.environ.get(self.token_env, "").strip()
            where = f"auth.token_env (${self.token_env})"
        else:
            return None
        if len(value) < MIN_TOKEN_CHARS:
            raise ValueError(f"{where}: the token is missing or shorter than {MIN_TOKEN_CHARS} "
                             "characters; set a long random token")
        return value
