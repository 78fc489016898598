"""The certificates admin requests carry: what Entra ID and Salesforce accept for app logins."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers.certificates import generate_certificate


def test_a_generated_certificate_is_self_signed_for_its_own_rsa_key() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    generated = generate_certificate("Integration Builder orders prod", now=now)

    certificate = x509.load_pem_x509_certificate(generated.certificate_pem.encode("ascii"))
    key = serialization.load_pem_private_key(generated.private_key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert key.public_key().public_numbers() == certificate.public_key().public_numbers()
    assert certificate.subject == certificate.issuer
    assert certificate.subject.rfc4514_string() == "CN=Integration Builder orders prod"
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(  # raises if the signature is not the key's own
        certificate.signature,
        certificate.tbs_certificate_bytes,
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    assert certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
    assert certificate.not_valid_after_utc - now > timedelta(days=700)
    assert generated.not_valid_after == certificate.not_valid_after_utc
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert generated.sha1_thumbprint == hashlib.sha1(der).hexdigest()  # noqa: S324


def test_every_certificate_has_its_own_key_and_the_key_is_kept_out_of_repr() -> None:
    first, second = generate_certificate("a"), generate_certificate("a")
    assert first.private_key_pem != second.private_key_pem
    assert first.sha1_thumbprint != second.sha1_thumbprint
    assert "PRIVATE" not in repr(first) and first.sha1_thumbprint in repr(first)
