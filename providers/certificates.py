"""Self-signed X.509 certificates for providers whose apps log in with a certificate.

Microsoft Entra ID app registrations (SharePoint, Dataverse, Dynamics 365) and Salesforce connected
apps accept a certificate instead of a client secret. For an admin request of such a provider
(``Provider.needs_certificate``) the service generates one: the administrator uploads the
certificate to the app registration, the private key never leaves the service (stored encrypted,
used only to sign token requests). A completed connection carries both, under the names below.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# The connection value with the certificate (PEM) and the connection secret with its private key.
CERTIFICATE_FIELD: Final = "certificate"
PRIVATE_KEY_FIELD: Final = "private_key"

# Entra ID accepts RSA only; 2048 bits is what its documentation and Salesforce's use.
KEY_SIZE: Final = 2048
DEFAULT_VALIDITY: Final = timedelta(days=730)
# Tolerates clocks of the external system that run a little behind ours.
_BACKDATE: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class GeneratedCertificate:
    certificate_pem: str
    private_key_pem: bytes = field(repr=False)
    sha1_thumbprint: str  # hex; Entra ID shows it, and token requests name it in the x5t header
    not_valid_after: datetime


def generate_certificate(
    common_name: str, *, validity: timedelta = DEFAULT_VALIDITY, now: datetime | None = None
) -> GeneratedCertificate:
    """A new RSA key and a self-signed certificate for it, named ``CN=<common_name>``.

    Takes a noticeable fraction of a second (key generation): call it off the event loop.
    """
    issued = (now or datetime.now(UTC)) - _BACKDATE
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued)
        .not_valid_after(issued + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return GeneratedCertificate(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        sha1_thumbprint=hashlib.sha1(  # noqa: S324 (the thumbprint format the systems use, not security)
            certificate.public_bytes(serialization.Encoding.DER)
        ).hexdigest(),
        not_valid_after=certificate.not_valid_after_utc,
    )
