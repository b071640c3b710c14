"""The principal of a client certificate, as Kafka's DEFAULT ssl.principal.mapping.rules names
it: User: and the subject's distinguished name in RFC 2253 form (Java's X500Principal)."""

from __future__ import annotations

from rafka.broker.net.tls import ANONYMOUS, principal_of


class Peer:
    def __init__(self, certificate: dict | None) -> None:
        self.certificate = certificate

    def getpeercert(self) -> dict | None:
        return self.certificate


def test_subject_in_rfc2253_order_with_escapes() -> None:
    subject = (
        (("countryName", "US"),),
        (("organizationName", "Acme, Inc"),),
        (("organizationalUnitName", "payments"),),
        (("commonName", "app-1"),),
    )
    assert principal_of(Peer({"subject": subject})) == (
        "User:CN=app-1,OU=payments,O=Acme\\, Inc,C=US"
    )


def test_multi_valued_rdn_and_unknown_attribute() -> None:
    subject = ((("commonName", "a"), ("userId", "7")), (("emailAddress", "a@b"),))
    assert principal_of(Peer({"subject": subject})) == "User:emailAddress=a@b,CN=a+UID=7"


def test_no_certificate_is_anonymous() -> None:
    assert principal_of(None) == ANONYMOUS
    assert principal_of(Peer(None)) == ANONYMOUS
    assert principal_of(Peer({})) == ANONYMOUS
