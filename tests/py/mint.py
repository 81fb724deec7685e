"""Mints JWTs with PyJWT, and generates test key pairs (test-only).

    mint.py keys DIR                      write rsa/ec/ed private+public PEMs
    mint.py token ALG KEYFILE CLAIMS [HEADERS]   print a token
"""
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def write_keys(directory):
    pairs = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }
    for name, key in pairs.items():
        with open(f"{directory}/{name}.pem", "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(f"{directory}/{name}.pub.pem", "wb") as f:
            f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))


def token(alg, key_file, claims, headers=None):
    with open(key_file, "rb") as f:
        key = f.read()
    body = json.loads(claims)
    body.setdefault("exp", int(time.time()) + 900)
    return jwt.encode(body, key, algorithm=alg, headers=json.loads(headers) if headers else None)


if __name__ == "__main__":
    if sys.argv[1] == "keys":
        write_keys(sys.argv[2])
    else:
        sys.stdout.write(token(*sys.argv[2:]))
