"""RFC 9421 Appendix B test material: keys (B.1), messages (B.2, B.3, B.4), vectors.

Only public example keys published in the RFC; never use them elsewhere.
Long lines are split as in the RFC (RFC 8792 style) and joined here.
"""

from __future__ import annotations

import base64

from scout_auth._signing.components import HttpRequest


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# B.1.4 test-key-ed25519 (JWK "d" is the 32-byte seed, "x" the public key).
ED25519_SEED = b64url("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
ED25519_PUBLIC = b64url("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs")

# B.1.2 test-key-rsa-pss (public half).
RSA_PSS_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2
+QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+
oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFPNU8PPMO7OyrFAHq
gDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUAAN5W
Utzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4
aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdDOp9LCNCN48V2pnDOkFV6+U9nV5oyc6XI
2wIDAQAB
-----END PUBLIC KEY-----
"""

# B.1.5 test-shared-secret (HMAC-SHA256 key).
SHARED_SECRET = base64.b64decode(
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
)

# B.1.3 test-key-ecc-p256 (public half, JWK coordinates).
P256_X = b64url("qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivA")
P256_Y = b64url("Mc4nN9LTDOBhfoUeg8Ye9WedFRhnZXZJA12Qp0zZ6F0")

CONTENT_DIGEST = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgB"
    "WnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)
BODY = b'{"hello": "world"}'

# B.2 test-request.
TEST_REQUEST = HttpRequest(
    method="POST",
    scheme="https",
    authority="example.com",
    path="/foo",
    query="param=Value&Pet=dog",
    headers=[
        ("Host", "example.com"),
        ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("Content-Type", "application/json"),
        ("Content-Digest", CONTENT_DIGEST),
        ("Content-Length", "18"),
    ],
)

CLIENT_CERT = (
    ":MIIBqDCCAU6gAwIBAgIBBzAKBggqhkjOPQQDAjA6MRswGQYDVQQKDBJMZXQncyBBdXRoZW50aWNhdGUx"
    "GzAZBgNVBAMMEkxBIEludGVybWVkaWF0ZSBDQTAeFw0yMDAxMTQyMjU1MzNaFw0yMTAxMjMyMjU1MzNa"
    "MA0xCzAJBgNVBAMMAkJDMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8YnXXfaUgmnMtOXU/IncWalR"
    "hebrXmckC8vdgJ1p5Be5F/3YC8OthxM4+k1M6aEAEFcGzkJiNy6J84y7uzo9M6NyMHAwCQYDVR0TBAIw"
    "ADAfBgNVHSMEGDAWgBRm3WjLa38lbEYCuiCPct0ZaSED2DAOBgNVHQ8BAf8EBAMCBsAwEwYDVR0lBAww"
    "CgYIKwYBBQUHAwIwHQYDVR0RAQH/BBMwEYEPYmRjQGV4YW1wbGUuY29tMAoGCCqGSM49BAMCA0gAMEUC"
    "IBHda/r1vaL6G3VliL4/Di6YK0Q6bMjeSkC3dFCOOB8TAiEAx/kHSB4urmiZ0NX5r5XarmPk0wmuydBV"
    "oU4hBVZ1yhk=:"
)

# B.3 the request as the service behind a TLS-terminating proxy sees it.
TTRP_REQUEST = HttpRequest(
    method="POST",
    scheme="https",
    authority="service.internal.example",
    path="/foo",
    query="param=Value&Pet=dog",
    headers=[
        ("Host", "service.internal.example"),
        ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("Content-Type", "application/json"),
        ("Content-Length", "18"),
        ("Client-Cert", CLIENT_CERT),
    ],
)

# (section, Signature-Input member after "label=", expected base, request, alg, signature)
BASE_VECTORS = [
    (
        "s2.5",
        '("@method" "@authority" "@path" "content-digest" "content-length" "content-type")'
        ';created=1618884473;keyid="test-key-rsa-pss"',
        "\n".join(
            [
                '"@method": POST',
                '"@authority": example.com',
                '"@path": /foo',
                f'"content-digest": {CONTENT_DIGEST}',
                '"content-length": 18',
                '"content-type": application/json',
                '"@signature-params": ("@method" "@authority" "@path" "content-digest" '
                '"content-length" "content-type");created=1618884473;keyid="test-key-rsa-pss"',
            ]
        ),
        TEST_REQUEST,
        None,
        None,
    ),
    (
        "b2.1",
        '();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"',
        '"@signature-params": ();created=1618884473;keyid="test-key-rsa-pss"'
        ';nonce="b3k2pp5k7z-50gnwp.yemd"',
        TEST_REQUEST,
        "rsa-pss-sha512",
        "d2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopemLJcWDy/lkbbHAve4cRAtx31Iq786U7it++wgGx"
        "btRxf8Udx7zFZsckzXaJMkA7ChG52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR72"
        "rgFWhzx2VjBqJzsPLMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6UnCh8jYzuVG5W"
        "Sb/QEVPnP5TmcAnLH1g+s++v6d4s8m0gCw1fV5/SITLq9mhho8K3+7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q==",
    ),
    (
        "b2.2",
        '("@authority" "content-digest" "@query-param";name="Pet")'
        ';created=1618884473;keyid="test-key-rsa-pss";tag="header-example"',
        "\n".join(
            [
                '"@authority": example.com',
                f'"content-digest": {CONTENT_DIGEST}',
                '"@query-param";name="Pet": dog',
                '"@signature-params": ("@authority" "content-digest" "@query-param";name="Pet")'
                ';created=1618884473;keyid="test-key-rsa-pss";tag="header-example"',
            ]
        ),
        TEST_REQUEST,
        "rsa-pss-sha512",
        "LjbtqUbfmvjj5C5kr1Ugj4PmLYvx9wVjZvD9GsTT4F7GrcQEdJzgI9qHxICagShLRiLMlAJjtq6N4CDfKtjvu"
        "JyE5qH7KT8UCMkSowOB4+ECxCmT8rtAmj/0PIXxi0A0nxKyB09RNrCQibbUjsLS/2YyFYXEu4TRJQzRw1rLEu"
        "EfY17SARYhpTlaqwZVtR8NV7+4UKkjqpcAoFqWFQh62s7Cl+H2fjBSpqfZUJcsIk4N6wiKYd4je2U/lankenQ"
        "99PZfB4jY3I5rSV2DSBVkSFsURIjYErOs0tFTQosMTAoxk//0RoKUqiYY8Bh0aaUEb0rQl3/XaVe4bXTugEjHSw==",
    ),
    (
        "b2.3",
        '("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" '
        '"content-length");created=1618884473;keyid="test-key-rsa-pss"',
        "\n".join(
            [
                '"date": Tue, 20 Apr 2021 02:07:55 GMT',
                '"@method": POST',
                '"@path": /foo',
                '"@query": ?param=Value&Pet=dog',
                '"@authority": example.com',
                '"content-type": application/json',
                f'"content-digest": {CONTENT_DIGEST}',
                '"content-length": 18',
                '"@signature-params": ("date" "@method" "@path" "@query" "@authority" '
                '"content-type" "content-digest" "content-length");created=1618884473'
                ';keyid="test-key-rsa-pss"',
            ]
        ),
        TEST_REQUEST,
        "rsa-pss-sha512",
        "bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yBiMIRGOnMYwZ/5MR6fb0Kh1rIRASVxFkeGt683+"
        "qRpRRU5p2voTp768ZrCUb38K0fUxN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7KsLNmv"
        "KiLJH1pFkh/aYA2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9bpG6A9BmzhuzF8E"
        "im5f8ui9eH8LZH896+QIF61ka39VBrohr9iyMUJpvRX2Zbhl5ZJzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA==",
    ),
    (
        "b2.5",
        '("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
        "\n".join(
            [
                '"date": Tue, 20 Apr 2021 02:07:55 GMT',
                '"@authority": example.com',
                '"content-type": application/json',
                '"@signature-params": ("date" "@authority" "content-type");created=1618884473'
                ';keyid="test-shared-secret"',
            ]
        ),
        TEST_REQUEST,
        "hmac-sha256",
        "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=",
    ),
    (
        "b2.6",
        '("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"',
        "\n".join(
            [
                '"date": Tue, 20 Apr 2021 02:07:55 GMT',
                '"@method": POST',
                '"@path": /foo',
                '"@authority": example.com',
                '"content-type": application/json',
                '"content-length": 18',
                '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
                '"content-length");created=1618884473;keyid="test-key-ed25519"',
            ]
        ),
        TEST_REQUEST,
        "ed25519",
        "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==",
    ),
    (
        "b3",
        '("@path" "@query" "@method" "@authority" "client-cert")'
        ';created=1618884473;keyid="test-key-ecc-p256"',
        "\n".join(
            [
                '"@path": /foo',
                '"@query": ?param=Value&Pet=dog',
                '"@method": POST',
                '"@authority": service.internal.example',
                f'"client-cert": {CLIENT_CERT}',
                '"@signature-params": ("@path" "@query" "@method" "@authority" "client-cert")'
                ';created=1618884473;keyid="test-key-ecc-p256"',
            ]
        ),
        TTRP_REQUEST,
        "ecdsa-p256-sha256",
        "xVMHVpawaAC/0SbHrKRs9i8I3eOs5RtTMGCWXm/9nvZzoHsIg6Mce9315T6xoklyy0yzhD9ah4JHRwMLOgmizw==",
    ),
]

B26_SIGNATURE_INPUT = f"sig-b26={BASE_VECTORS[5][1]}"
B26_SIGNATURE = f"sig-b26=:{BASE_VECTORS[5][5]}:"

# B.4 transformations: a GET signed with test-key-ed25519 under label "transform".
B4_SIGNATURE_INPUT = (
    'transform=("@method" "@path" "@authority" "accept");created=1618884473'
    ';keyid="test-key-ed25519"'
)
B4_SIGNATURE = (
    "transform=:ZT1kooQsEHpZ0I1IjCqtQppOmIqlJPeo7DHR3SoMn0s5JZ1eRGS0A+vyYP9t"
    "/LXlh5QMFFQ6cpLt2m0pmj3NDA==:"
)
B4_BASE = "\n".join(
    [
        '"@method": GET',
        '"@path": /demo',
        '"@authority": example.org',
        '"accept": application/json, */*',
        '"@signature-params": ("@method" "@path" "@authority" "accept");created=1618884473'
        ';keyid="test-key-ed25519"',
    ]
)
